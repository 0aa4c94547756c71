"""What was sent: `log` (each attempt) and `stats` (per URL and event)."""

from __future__ import annotations

import json
import time

import click

from shahihooks import logline
from shahihooks.cli.commands import duration
from shahihooks.cli.doctor import warn_if_lost
from shahihooks.cli.endpoints import endpoint_rows
from shahihooks.cli.output import paint, print_result, table
from shahihooks.safety import redact_url
from shahihooks.settings import current
from shahihooks.terminal import printable


@click.command()
@click.option("--since", default="24h", show_default=True, help="Period: 90m, 24h, 7d...")
@click.option("--url", default=None, help="Only this URL.")
@click.option("--event", default=None, help="Only this event.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(since: str, url: str | None, event: str | None, as_json: bool) -> None:
    """Per URL and event: count, success rate, average and p95 response time.

    Read from hourly aggregates (the page's dashboard query), not by scanning the log.

    \b
    Example:
      shahihooks stats --since 24h --event ticket.created
    """
    from shahihooks.stats import describe_waiting, read_stats, waiting_by_url

    settings = current()
    warn_if_lost(settings)
    shown = redact_url(url) if url else None  # the stats hold URLs as shown
    rows = read_stats(settings, duration(since) or 86_400, shown, event)
    waiting = waiting_by_url(settings)
    if shown is not None:
        waiting = {u: w for u, w in waiting.items() if u == shown}
    none = {"waiting": 0, "retrying": 0, "oldest_wait_s": None, "next_release_in_s": None}
    data = [{**r.as_dict(), **waiting.get(r.url, none)} for r in rows]
    listed = {r.url for r in rows}
    data += [{"url": u, "event": "", **w} for u, w in waiting.items() if u not in listed]
    lines = [f"{'URL':<44} {'EVENT':<22} {'COUNT':>6} {'OK %':>6} {'AVG ms':>8} {'P95 ms':>8}"]
    for r in rows:
        p95 = (
            "-"
            if r.p95_ms is None
            else (f"≤{r.p95_ms:g}" if r.p95_ms != float("inf") else ">30000")
        )
        lines.append(
            f"{r.url[:44]:<44} {r.event:<22} {r.count:>6} {100 * r.success_rate:>6.1f} "
            f"{r.avg_ms:>8.1f} {p95:>8}"
        )
    if not rows:
        lines.append(f"no attempts in the last {since}")
    if waiting:
        lines += ["", f"{'URL':<44} WAITING NOW"]
        lines += [f"{u[:44]:<44} {describe_waiting(w)}" for u, w in sorted(waiting.items())]
    health = {r["url"]: r for r in endpoint_rows()}
    for row in data:
        if row["url"] in health:
            row["health"] = health[row["url"]]["health"]
    sick = [r for r in health.values() if r["state"] != "ok"]
    if sick:
        lines += ["", f"{'URL':<44} HEALTH"]
        lines += [f"{str(r['url'])[:44]:<44} {r['health']}" for r in sick]
    print_result(data, as_json, "\n".join(lines), header=True)


_LOG_HEADERS = ("TIME", "", "STATUS", "MS", "#", "EVENT", "ID", "URL", "ERROR")
_LOG_WIDTHS = (8, 1, 6, 6, 2, 22, 69)  # the fixed columns of `log --follow`


def _log_cells(row: dict[str, str]) -> list[str]:
    when = time.strftime("%H:%M:%S", time.localtime(float(row.get("ts") or 0)))
    outcome = row.get("outcome", "")
    mark = {"delivered": "✓", "retry": "↻", "dead": "✗", "deferred": "…"}.get(outcome, "?")
    error = logline.error_text(row)
    status = row.get("status") or "---"
    cells = [when, mark, status, row.get("ms", "0"), row.get("attempt", ""), row.get("event", "")]
    return [
        printable(c, lines=False) for c in [*cells, row.get("id", ""), row.get("url", ""), error]
    ]


def _log_line(cells: list[str]) -> str:
    padded = [c.ljust(w) for c, w in zip(cells, _LOG_WIDTHS, strict=False)]
    return "  ".join([*padded, *cells[len(_LOG_WIDTHS) :]]).rstrip()


def _log_json(row: dict[str, str]) -> str:
    """One attempt as JSON: numbers as numbers, and null for what it has not (no status)."""
    return json.dumps(logline.typed(row))


@click.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing new attempts.")
@click.option("--url", default=None, help="Only this URL.")
@click.option("--event", default=None, help="Only this event.")
@click.option("--failed", is_flag=True, help="Only failed attempts.")
@click.option("--limit", "-n", default=50, show_default=True, help="How many recent attempts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per line).")
def log(
    follow: bool, url: str | None, event: str | None, failed: bool, limit: int, as_json: bool
) -> None:
    """Recent delivery attempts: status, duration, error.

    \b
    Examples:
      shahihooks log --failed
      shahihooks log --follow --url https://myapp.example/webhook
    """
    from shahihooks.stats import follow_log, read_log

    settings = current()
    url = redact_url(url) if url else None  # the log holds URLs as shown
    rows = read_log(settings, limit, url, event, failed)
    if as_json:
        for row in rows:
            click.echo(_log_json(row))
    elif follow:
        click.echo(paint(_log_line(list(_LOG_HEADERS)), header=True))
        for row in rows:
            click.echo(paint(_log_line(_log_cells(row))))
    else:
        cells = [_log_cells(row) for row in rows]
        click.echo(paint(table(_LOG_HEADERS, cells, empty="no attempts logged"), bool(rows)))
    if follow:
        try:
            for row in follow_log(settings, url, event, failed):
                click.echo(_log_json(row) if as_json else paint(_log_line(_log_cells(row))))
        except KeyboardInterrupt:
            pass
