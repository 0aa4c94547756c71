"""`shahihooks endpoints`: the runtime endpoint store, and every endpoint's health."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from shahihooks.cli.commands import BODY_STYLES
from shahihooks.cli.output import print_result, table
from shahihooks.safety import redact_url
from shahihooks.settings import current

if TYPE_CHECKING:
    from shahihooks.copies import Copy


@click.group()
def endpoints() -> None:
    """The runtime endpoint store (in Redis), beside SHAHIHOOKS_URLS.

    \b
    Examples:
      shahihooks endpoints add https://myapp.example/webhook --event ticket.created
      shahihooks endpoints disable https://myapp.example/webhook
      shahihooks endpoints list
    """


def _store() -> Any:
    from shahihooks.connections import state_redis
    from shahihooks.endpoints import EndpointStore

    settings = current()
    return EndpointStore(state_redis(settings), settings)


def endpoint_rows() -> list[dict[str, Any]]:
    from shahihooks.health import endpoint_health
    from shahihooks.stats import waiting_by_url

    settings = current()
    rows = [
        {
            "url": u,
            "events": list(settings.events) if settings.events else "all",
            "source": "SHAHIHOOKS_URLS",
            "enabled": True,
            "secrets": "global",
            "body_style": settings.body_style,
        }
        for u in settings.urls
    ]
    rows += [
        {
            "url": u,
            "events": "operational",
            "source": "SHAHIHOOKS_OPS_URLS",
            "enabled": True,
            "secrets": "ops" if settings.ops_secret else "global",
            "body_style": "standard",
        }
        for u in settings.ops_urls
    ]
    for e in _store().all():
        shown = e.redacted()
        shown["events"] = list(e.events) if e.events else "all"
        rows.append({**shown, "url": e.url, "source": "store"})
    healths = endpoint_health(settings, [str(r["url"]) for r in rows])
    waiting = waiting_by_url(settings)
    none = {"waiting": 0, "retrying": 0, "oldest_wait_s": None, "next_release_in_s": None}
    out = []
    for row, health in zip(rows, healths, strict=True):
        row = {**row, "url": health.url, **health.as_dict()}
        row["enabled"] = health.state != "disabled"
        out.append({**row, **waiting.get(health.url, none)})
    return out


@endpoints.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def endpoints_list(as_json: bool) -> None:
    """List endpoints: SHAHIHOOKS_URLS, SHAHIHOOKS_OPS_URLS and the store (secrets are never
    shown), each with its health (ok, limited to N in flight, circuit open until T, disabled
    since T and why) and what waits for it: its backlog and its retries."""
    from shahihooks.stats import describe_waiting

    rows = endpoint_rows()
    text = table(
        ["HEALTH", "URL", "EVENTS", "SECRET", "BODY", "SOURCE"],
        [
            (
                _mark_health(r["state"]) + " " + r["health"],
                r["url"],
                r["events"] if isinstance(r["events"], str) else ",".join(r["events"]),
                r["secrets"],
                r["body_style"],
                r["source"],
            )
            for r in rows
        ],
        empty="no endpoints: set SHAHIHOOKS_URLS or use `shahihooks endpoints add URL`",
    )
    waiting = [(r["url"], describe_waiting(r)) for r in rows if r["waiting"] or r["retrying"]]
    if waiting:
        text += "\n\n" + table(["URL", "WAITING NOW"], waiting)
    failing = [(r["url"], r["last_error"]) for r in rows if r["state"] != "ok" and r["last_error"]]
    if failing:
        text += "\n\n" + table(["URL", "LAST ERROR"], failing)
    print_result(rows, as_json, text, header=bool(rows))


def _mark_health(state: str) -> str:
    return {"ok": "✓", "limited": "↻", "open": "✗", "disabled": "✗"}.get(state, "?")


@endpoints.command("add")
@click.argument("url")
@click.option(
    "--event", "events", multiple=True, help="Event to receive (repeatable; default all)."
)
@click.option(
    "--secret", "secrets", multiple=True, help="Its own secret (repeatable, newest first)."
)
@click.option("--rate-limit", type=int, default=None, help="Attempts per window (0: no limit).")
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    default=None,
    help="Most attempts in flight to it (default: SHAHIHOOKS_ENDPOINT_CONCURRENCY).",
)
@click.option("--description", default="", help="A note for people.")
@click.option(
    "--body-style",
    type=BODY_STYLES,
    default="standard",
    show_default=True,
    help="php: for receivers written from the page's PHP or Laravel handler.",
)
def endpoints_add(
    url: str,
    events: tuple[str, ...],
    secrets: tuple[str, ...],
    rate_limit: int | None,
    concurrency: int | None,
    description: str,
    body_style: str,
) -> None:
    """Add (or replace) an endpoint in the store.

    \b
    Example:
      shahihooks endpoints add https://myapp.example/webhook.php --body-style php
    """
    from shahihooks.endpoints import Endpoint
    from shahihooks.events import registry

    for event in events:
        registry.get(event)  # an unknown event is refused, named, not stored
    endpoint = Endpoint(
        url,
        events or None,
        secrets,
        rate_limit,
        True,
        description,
        body_style,
        concurrency=concurrency,
    )
    _store().add(endpoint)
    click.echo(f"added {redact_url(url)}")


@endpoints.command("remove")
@click.argument("url")
def endpoints_remove(url: str) -> None:
    """Remove an endpoint from the store: nothing more is sent to it (its deliveries are
    dead-lettered as they come up, replayable once it is back)."""
    if not _store().remove(url):
        raise click.ClickException(
            f"no endpoint {redact_url(url)!r} in the store (see: endpoints list)"
        )
    click.echo(f"removed {redact_url(url)}")


@endpoints.command("enable")
@click.argument("url")
@click.option(
    "--recover",
    is_flag=True,
    help="Also replay, in emit order, the dead letters it collected while failing or disabled.",
)
def endpoints_enable(url: str, recover: bool) -> None:
    """Enable an endpoint (of the store or SHAHIHOOKS_URLS) with a fresh start: its circuit
    closed, its failures forgotten.

    \b
    Example:
      shahihooks endpoints enable https://myapp.example/webhook --recover
    """
    replayed = _store().set_enabled(url, True, recover=recover)
    more = f", {replayed} dead letter(s) replayed in emit order" if recover else ""
    click.echo(f"enabled {redact_url(url)}{more}")


@endpoints.command("disable")
@click.argument("url")
def endpoints_disable(url: str) -> None:
    """Disable an endpoint (of the store or SHAHIHOOKS_URLS): nothing more is sent to it,
    checked at every attempt. Its deliveries, and events emitted while it is disabled, are
    dead-lettered with the reason (replay them with `enable --recover`)."""
    _store().set_enabled(url, False)
    click.echo(f"disabled {redact_url(url)}")


@endpoints.command("sync")
def endpoints_sync() -> None:
    """In a Redis Cluster, write the store's newest copy over every shard's copy that
    differs from it (a write cut short by a primary down or a process killed leaves them
    different; `shahihooks doctor` says so). The newest: of the highest version, then the
    one most shards hold. One Redis keeps one copy: nothing to do.

    A shard's copy that another write reached while syncing is left as that write made it
    and named; the exit status is then 1: run it again.

    \b
    Example:
      shahihooks endpoints sync
    """
    store = _store()
    if not store.settings.redis_cluster:
        click.echo("one Redis: the endpoint store has one copy, nothing to sync")
        return
    synced = store.sync()
    best = synced.best
    if not synced.written and not synced.skipped:
        click.echo(f"the copies are alike ({best.text()} and every other): nothing to do")
        return
    if synced.written:
        click.echo(f"shard(s) {_shards(synced.written)} given the newest copy, {best.text()}")
    if synced.skipped:
        raise click.ClickException(
            f"shard(s) {_shards(synced.skipped)} changed while syncing (another write to the "
            "store at the same time): not overwritten; run `shahihooks endpoints sync` again"
        )


def _shards(found: list[Copy]) -> str:
    return ", ".join(str(c.shard) for c in found)
