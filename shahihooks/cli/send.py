"""Sending from the command line: `test` (one signed delivery to a URL, now) and `emit`."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from shahihooks.cli.commands import BODY_STYLES
from shahihooks.cli.output import print_result, table
from shahihooks.safety import redact_url
from shahihooks.settings import current
from shahihooks.signing import secret_keys


@click.command()
@click.argument("url")
@click.option("--event", default="ticket.created", show_default=True, help="Event name.")
@click.option(
    "--secret", "secrets", multiple=True, help="Sign with this (default: SHAHIHOOKS_SECRET)."
)
@click.option(
    "--body-style", type=BODY_STYLES, default=None, help="Default: SHAHIHOOKS_BODY_STYLE."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def test(
    url: str, event: str, secrets: tuple[str, ...], body_style: str | None, as_json: bool
) -> None:
    """Send one signed test delivery to URL now and print what came back.

    If the receiver answers 401, a probe body is sent in both body styles and the
    result says which one it verifies.

    \b
    Example:
      shahihooks test https://myapp.example/webhook --event ticket.created
      shahihooks test https://myapp.example/webhook.php --body-style php
    """
    from shahihooks.events import registry
    from shahihooks.probe import send_test, which_style
    from shahihooks.safety import check_target

    settings = current()
    registry.get(event)
    check_target(url, settings)
    keys = secrets or settings.secrets
    if not keys:
        raise click.ClickException("no secret: pass --secret or set SHAHIHOOKS_SECRET")
    secret_keys(keys, "--secret")
    trial = send_test(url, event, keys, settings, body_style or settings.body_style)
    response = trial.response
    result: dict[str, Any] = {
        "url": redact_url(url),
        "delivery_id": trial.delivery_id,
        "body_style": str(trial.style),
        "status": response.status,
        "ok": response.ok,
        "ms": round(response.duration_s * 1000, 1),
        "error": response.error,
        "response": response.body[:500],
    }
    shown = f"HTTP {response.status}" if response.status is not None else response.error
    text = f"{'✓' if response.ok else '✗'} {shown} in {result['ms']:.0f} ms  ({result['url']})"
    if response.body:
        text += "\n" + response.body[:500]
    if response.status == 401:
        report = which_style(url, event, keys, settings)
        result["body_styles"] = report.as_dict()
        text += "\n" + report.text()
        if report.fix(url):
            text += f"\n    → {report.fix(url)}"
    print_result(result, as_json, text)
    sys.exit(0 if response.ok else 1)


@click.command()
@click.argument("event")
@click.option(
    "--data",
    "data_arg",
    default=None,
    help="JSON, or @file to read it from. Default: the event's example data (the page's).",
)
@click.option("--key", default=None, help="Idempotency key: the same key enqueues once.")
@click.option("--json", "as_json", is_flag=True, help="Print the deliveries as JSON.")
def emit(event: str, data_arg: str | None, key: str | None, as_json: bool) -> None:
    """Emit EVENT; prints one delivery id per endpoint.

    Without --data it sends the event's example data: the page's own example for
    ticket.created, ticket.status_changed and article.published.

    \b
    Examples:
      shahihooks emit ticket.created
      shahihooks emit ticket.created --data '{"ticket_id": 123, "title": "Login issue"}'
    """
    from shahihooks.emit import emit as do_emit

    if data_arg is None:
        deliveries = do_emit(event, _example(event), key=key, settings=current())
        # said once it is sent (on stderr, so a pipe gets only the deliveries): not before
        # an error
        click.echo(f"no --data: sent the example data of {event}", err=True)
        _show_deliveries(deliveries, as_json)
        return
    raw = data_arg
    if raw.startswith("@"):
        try:
            with open(raw[1:], encoding="utf-8") as fh:
                raw = fh.read()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {raw[1:]!r}: {exc.strerror}", param_hint="--data"
            ) from None
    data = _parse_data(raw)
    if not isinstance(data, dict):
        raise click.BadParameter(
            f"must be a JSON object ({{...}}): the payload's data; got {_json_kind(data)}: "
            f"{raw.strip()[:60]}",
            param_hint="--data",
        )
    deliveries = do_emit(event, data, key=key, settings=current())
    _show_deliveries(deliveries, as_json)


def _example(event: str) -> Any:
    """The example data of `event` (a usage error if it has none)."""
    import copy

    from shahihooks.events import registry

    example = registry.get(event).example
    if not example:
        raise click.UsageError(f"{event} has no example data: pass --data")
    return copy.deepcopy(example)


def _show_deliveries(deliveries: Sequence[Any], as_json: bool) -> None:
    rows = [
        {"id": d.id, "url": redact_url(d.url), "event": d.event, "status": d.status}
        for d in deliveries
    ]
    text = table(
        ["ID", "STATUS", "URL"],
        [(r["id"], r["status"], r["url"]) for r in rows],
        empty="no endpoint subscribes",
    )
    print_result(rows, as_json, text, header=bool(rows))


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}
    return kinds.get(type(value), "a number")


def _parse_data(raw: str) -> Any:
    """`--data` as JSON; too deep a nesting is a usage error, not a RecursionError."""
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    except RecursionError:
        raise click.BadParameter(
            f"the JSON nests too deeply to decode (more than {sys.getrecursionlimit()} "
            "levels); send flatter data",
            param_hint="--data",
        ) from None
