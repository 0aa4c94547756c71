"""`shahihooks dead`: list, show and replay dead letters."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from shahihooks.cli.commands import duration
from shahihooks.cli.output import print_result, table
from shahihooks.safety import redact_url
from shahihooks.settings import Settings, current
from shahihooks.terminal import printable


@click.group()
def dead() -> None:
    """Dead letters: deliveries whose retries are spent, kept with their full body.

    \b
    Examples:
      shahihooks dead list
      shahihooks dead show evt_0c1d...-a1b2...e5f6
      shahihooks dead replay --all
    """


def _dead_row(letter: Any, settings: Settings) -> dict[str, Any]:
    from shahihooks import dead as dead_letters

    return {
        "id": letter.id,
        "url": redact_url(letter.url),
        "event": letter.event,
        "attempts": letter.attempts,
        "reason": letter.reason,
        "died_at": letter.died_at,
        "expires_at": dead_letters.expires_at(letter, settings),
        "bytes": len(letter.body),
    }


@dead.command("list")
@click.option("--since", default=None, help="Only those dead within this period (24h, 7d...).")
@click.option("--url", default=None, help="Only this URL.")
@click.option("--limit", default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dead_list(since: str | None, url: str | None, limit: int, as_json: bool) -> None:
    """List dead letters, oldest first.

    \b
    Example:
      shahihooks dead list --since 24h
    """
    settings = current()
    letters = _select_dead(settings, (), False, since, url, limit)
    rows = [_dead_row(d, settings) for d in letters]
    text = table(
        ["DIED", "EXPIRES", "ID", "EVENT", "ATTEMPTS", "URL", "REASON"],
        [
            (
                time.strftime("%Y-%m-%d %H:%M", time.localtime(r["died_at"])),
                time.strftime("%Y-%m-%d %H:%M", time.localtime(r["expires_at"])),
                r["id"],
                r["event"],
                r["attempts"],
                r["url"],
                r["reason"],
            )
            for r in rows
        ],
        empty="no dead letters",
    )
    print_result(rows, as_json, text, header=bool(rows))


@dead.command("show")
@click.argument("delivery_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dead_show(delivery_id: str, as_json: bool) -> None:
    """Show one dead letter with its full body.

    \b
    Example:
      shahihooks dead show evt_0c1d...-a1b2...e5f6
    """
    from shahihooks import dead as dead_letters

    settings = current()
    letter = dead_letters.get(delivery_id, settings)
    if letter is None:
        raise click.ClickException(f"no dead letter {delivery_id!r} (see: shahihooks dead list)")
    row = {
        **_dead_row(letter, settings),
        "body": letter.body.decode("utf-8", "replace"),
        "response": letter.response,
        "status": int(letter.status) if letter.status.isdigit() else None,
    }
    # one line per field; only the bodies keep their own newlines
    text = "\n".join(
        f"{k:>9}: {printable(str(v), lines=k in ('body', 'response'))}" for k, v in row.items()
    )
    print_result(row, as_json, text)


def _select_dead(
    settings: Settings,
    ids: tuple[str, ...],
    everything: bool,
    since: str | None,
    url: str | None,
    limit: int = 1_000_000,
) -> list[Any]:
    from shahihooks import dead as dead_letters

    if ids:
        found = [dead_letters.get(i, settings) for i in ids]
        missing = [i for i, f in zip(ids, found, strict=True) if f is None]
        if missing:
            raise click.ClickException(f"no dead letter {missing[0]!r} (see: shahihooks dead list)")
        return [f for f in found if f is not None]
    since_s = duration(since)
    start = time.time() - since_s if since_s is not None else 0
    letters = dead_letters.fetch(dead_letters.list_ids(settings, start, limit), settings)
    shown = redact_url(url) if url is not None else None  # dead letters hold URLs as shown
    return [d for d in letters if shown is None or d.url == shown]


@dead.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Replay every dead letter.")
@click.option("--since", default=None, help="Those dead within this period (24h, 7d...).")
@click.option("--url", default=None, help="Those for this URL.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dead_replay(
    ids: tuple[str, ...], everything: bool, since: str | None, url: str | None, as_json: bool
) -> None:
    """Send dead letters again: same delivery id and body, a fresh attempt count.

    A replayed delivery that fails again is dead-lettered again, not lost.

    \b
    Examples:
      shahihooks dead replay evt_0c1d...-a1b2...e5f6
      shahihooks dead replay --url https://myapp.example/webhook --since 24h
    """
    from shahihooks import dead as dead_letters

    if not (ids or everything or since or url):
        raise click.UsageError("name delivery ids, or choose --all, --since or --url")
    settings = current()
    letters = _select_dead(settings, ids, everything, since, url)
    replayed: list[str] = []

    def replay_all(items: Any) -> None:
        for letter in items:
            if dead_letters.replay(letter.id, settings):
                replayed.append(letter.id)

    if len(letters) > 20:
        with click.progressbar(letters, label="replaying", file=sys.stderr, show_pos=True) as bar:
            replay_all(bar)
    else:
        replay_all(letters)
    print_result({"replayed": replayed}, as_json, f"replayed {len(replayed)} dead letter(s)")
