"""The `shahihooks` command line (also `python -m shahihooks`)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import click

from shahihooks.bodystyle import BodyStyle
from shahihooks.connections import OUTAGES, full_message
from shahihooks.errors import ShahihooksError, VerificationError
from shahihooks.payload import MAX_BODY_BYTES
from shahihooks.safety import redact_url
from shahihooks.settings import Settings, current
from shahihooks.signing import secret_keys
from shahihooks.terminal import printable

DEFAULT_WORKER_CONCURRENCY = 16


def _settings() -> Settings:
    try:
        return current()
    except ShahihooksError as exc:
        raise click.ClickException(str(exc)) from None


class Commands(click.Group):
    """A command group whose commands fail in one line: a shahihooks error, or Redis or the
    broker unreachable, is printed as `Error: ...` with exit status 1, never a traceback.
    Every error message is made printable (it may quote a receiver's answer)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ShahihooksError as exc:
            raise click.ClickException(printable(str(exc))) from None
        except OUTAGES as exc:
            raise click.ClickException(printable(_unreachable(exc))) from None
        except click.UsageError:
            raise  # about the command line itself
        except click.ClickException as exc:
            raise click.ClickException(printable(exc.format_message())) from None


def _unreachable(exc: BaseException) -> str:
    import redis

    detail = str(exc).strip().rstrip(".") or type(exc).__name__
    try:
        settings = current()
    except ShahihooksError:
        return f"Redis or the broker is unreachable ({detail})"
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return full_message(settings.redis_url)
    if isinstance(exc, redis.RedisError):
        what, url, setting = "Redis", settings.redis_url, "SHAHIHOOKS_REDIS_URL"
    else:
        what, url, setting = "the broker", settings.broker_url, "SHAHIHOOKS_BROKER_URL"
    return f"{what} at {redact_url(url)} is unreachable ({detail}): start it, or fix {setting}"


def color_on() -> bool:
    """Colour on a terminal only, and never with NO_COLOR set (https://no-color.org)."""
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


_MARKS = {"✓": "green", "✗": "red", "↻": "yellow"}


def paint(text: str, header: bool = False) -> str:
    """`text` made printable (`terminal.printable`), then, on a terminal, its ✓, ✗ and ↻
    marks coloured and its first line bold if it is a `header`. Every text the commands
    print goes through here: styling comes after escaping, so only ours reaches a terminal."""
    text = printable(text)
    if not color_on():
        return text
    if header:
        first, newline, rest = text.partition("\n")
        text = click.style(first, bold=True) + newline + rest
    for mark, colour in _MARKS.items():
        text = text.replace(mark, click.style(mark, fg=colour, bold=True))
    return text


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str = "") -> str:
    """Rows under a header row, in columns (the last one not padded); a cell is one line
    (its newlines and control characters escaped). Print it with `paint(..., header=True)`."""
    if not rows and empty:
        return empty
    cells = [[printable(str(c), lines=False) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in cells
    ]
    return "\n".join(lines)


def _out(payload: Any, as_json: bool, text: str, header: bool = False) -> None:
    """JSON exactly (json.dumps escapes control characters), or the text `paint`ed."""
    click.echo(json.dumps(payload, indent=2, default=str) if as_json else paint(text, header))


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shahihooks")
def main() -> None:
    """Signed, retried, rate-limited webhooks for Python apps, on Celery and Redis.

    Configuration comes from SHAHIHOOKS_* environment variables (see the README); with
    DJANGO_SETTINGS_MODULE set, from the project's SHAHIHOOKS dict.
    """
    if os.environ.get("DJANGO_SETTINGS_MODULE") and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python manage.py` and Celery's Django fixup do


_STYLES = click.Choice([s.value for s in BodyStyle], case_sensitive=False)


@main.command()
@click.argument("url")
@click.option("--event", default="ticket.created", show_default=True, help="Event name.")
@click.option(
    "--secret", "secrets", multiple=True, help="Sign with this (default: SHAHIHOOKS_SECRET)."
)
@click.option("--body-style", type=_STYLES, default=None, help="Default: SHAHIHOOKS_BODY_STYLE.")
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

    settings = _settings()
    try:
        registry.get(event)
        check_target(url, settings)
        keys = secrets or settings.secrets
        if not keys:
            raise click.ClickException("no secret: pass --secret or set SHAHIHOOKS_SECRET")
        secret_keys(keys, "--secret")
        trial = send_test(url, event, keys, settings, body_style or settings.body_style)
    except ShahihooksError as exc:
        raise click.ClickException(str(exc)) from None
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
    _out(result, as_json, text)
    sys.exit(0 if response.ok else 1)


@main.command()
@click.option("--secret", "secrets", multiple=True, required=True, help="Secret (repeatable).")
@click.option("--signature", required=True, help="'sha256=<hex>' or 'v1,<base64>'.")
@click.option("--id", "msg_id", help="webhook-id (needed for a v1 signature).")
@click.option("--timestamp", help="webhook-timestamp (needed for a v1 signature).")
@click.option(
    "--tolerance",
    default=None,
    type=click.IntRange(0),
    help="Seconds the timestamp may be off (0: exactly now); default: no age check.",
)
@click.argument("file", type=click.File("rb"))
def verify(
    secrets: tuple[str, ...],
    signature: str,
    msg_id: str | None,
    timestamp: str | None,
    tolerance: int | None,
    file: Any,
) -> None:
    """Check a saved body FILE (- for stdin) against a signature.

    \b
    Examples:
      shahihooks verify --secret s3cret --signature sha256=ab12... body.json
      shahihooks verify --secret whsec_... --signature v1,K5o... \\
          --id evt_1-ab --timestamp 1700000000 body.json
    """
    from shahihooks.signing import SIGNATURE_HEADER
    from shahihooks.signing import verify as check

    body = file.read()
    if signature.startswith("v1,"):
        if not msg_id or not timestamp:
            raise click.UsageError("a v1 signature needs --id and --timestamp")
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": signature,
        }
    else:
        headers = {SIGNATURE_HEADER: signature}
    try:
        secret_keys(list(secrets), "--secret")
        check(body, headers, list(secrets), tolerance_s=tolerance)
    except VerificationError as exc:
        click.echo(paint(f"✗ invalid: {exc}"))
        sys.exit(1)
    except ShahihooksError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(paint("✓ valid"))


@main.command()
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
        deliveries = do_emit(event, _example(event), key=key, settings=_settings())
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
    try:
        deliveries = do_emit(event, data, key=key, settings=_settings())
    except ShahihooksError as exc:
        raise click.ClickException(str(exc)) from None
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
    _out(rows, as_json, text, header=bool(rows))


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


def default_processes() -> int:
    """One worker process per core: the fastest setup measured (docs/benchmarks.md)."""
    return max(1, min(os.cpu_count() or 1, 256))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option(
    "--processes",
    default=default_processes,
    show_default="one per core",
    type=click.IntRange(1, 256),
    help="Worker processes to run (one per core is the measured best).",
)
@click.pass_context
def worker(ctx: click.Context, processes: int) -> None:
    """Start Celery workers with the recommended pool and settings: one process per core,
    threads, 16 each.

    Extra options go to `celery worker` (e.g. --concurrency 32, -E for Flower events).

    \b
    Examples:
      shahihooks worker --loglevel INFO   # one process per core
      shahihooks worker --processes 1     # one process (a container scaled by its count)
    """
    from shahihooks.app import app
    from shahihooks.worker import check_worker

    settings = _settings()
    check_worker(settings)
    extra = list(ctx.args)
    pool = _pool(extra)
    pool_given = pool is not None
    if pool not in (None, "threads") and (
        ctx.get_parameter_source("processes") is click.core.ParameterSource.DEFAULT
    ):
        processes = 1  # prefork makes its own children: not one such worker per core
    if processes > 1:
        sys.exit(_supervise(processes, extra))
    argv = ["worker", "-Q", settings.queue]
    if not pool_given:
        argv += ["--pool", "threads"]
    if not any(a.startswith(("--concurrency", "-c")) for a in extra):
        argv += ["--concurrency", str(DEFAULT_WORKER_CONCURRENCY)]
    app.worker_main(argv + extra)


# Flower's task list: the delivery (event → URL, attempt) is the args column (Makefile too)
FLOWER_COLUMNS = "name,uuid,state,args,exception,retries,received,runtime,worker"


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def flower(ctx: click.Context) -> None:
    """Start Flower on this configuration's broker, showing each delivery in its task list.

    The same as `celery -A shahihooks.app flower`, with the settings of the command line it
    runs from: `python manage.py shahihooks flower` uses a Django project's SHAHIHOOKS dict,
    `flask --app APP shahihooks flower` a Flask app's. Extra options go to Flower; give it a
    login (FLOWER_BASIC_AUTH=user:password or --basic_auth), and start workers with -E.

    \b
    Example:
      FLOWER_BASIC_AUTH=admin:choose-one shahihooks flower --address=127.0.0.1 --port=5555
    """
    from shahihooks.app import app

    _settings()  # a bad configuration is said here, in one line
    extra = list(ctx.args)
    if not any(a.startswith("--tasks_columns") for a in extra):
        extra.append(f"--tasks_columns={FLOWER_COLUMNS}")
    sys.exit(app.start(["flower", *extra]) or 0)


def _pool(extra: list[str]) -> str | None:
    """The pool named among celery's options (`--pool X`, `--pool=X`, `-P X`, `-PX`)."""
    for i, arg in enumerate(extra):
        if arg in ("--pool", "-P"):
            return extra[i + 1] if i + 1 < len(extra) else ""
        if arg.startswith("--pool="):
            return arg.split("=", 1)[1]
        if arg.startswith("-P"):
            return arg[2:]
    return None


def _respawn(extra: list[str]) -> list[str]:
    """This worker's own command line without --processes: the same entry point (shahihooks,
    `python manage.py shahihooks`, `flask shahihooks`), so each child has the same settings."""
    argv = list(sys.orig_argv[1:])
    if "worker" not in argv:  # not run from a command line (e.g. a test's runner)
        return [sys.executable, "-m", "shahihooks", "worker", *extra]
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            out.append(arg)
    return [sys.executable, *out]


def _supervise(processes: int, extra: list[str]) -> int:
    """Run `processes` single-process workers; SIGTERM/SIGINT reach each one, and each one
    stops if the supervisor dies (Linux). Node names carry the supervisor's pid, so two
    supervisors on one machine never share a worker's mailbox."""
    import os
    import signal
    import subprocess

    argv = _respawn(extra)
    tag = os.getpid()
    children = [
        subprocess.Popen(  # noqa: S603 - our own argv
            [*argv, "--processes", "1", "-n", f"shahihooks{i}.{tag}@%h"],
            preexec_fn=_die_with_parent,
        )
        for i in range(1, processes + 1)
    ]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(child.wait() for child in children)


def _die_with_parent() -> None:
    """In a child, before exec: SIGTERM when the parent dies (PR_SET_PDEATHSIG, Linux)."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the supervisor's signals still reach the children


def _duration(text: str | None) -> float | None:
    from shahihooks.stats import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
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

    settings = _settings()
    _warn_if_lost(settings)
    shown = redact_url(url) if url else None  # the stats hold URLs as shown
    rows = read_stats(settings, _duration(since) or 86_400, shown, event)
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
    health = {r["url"]: r for r in _endpoint_rows()}
    for row in data:
        if row["url"] in health:
            row["health"] = health[row["url"]]["health"]
    sick = [r for r in health.values() if r["state"] != "ok"]
    if sick:
        lines += ["", f"{'URL':<44} HEALTH"]
        lines += [f"{str(r['url'])[:44]:<44} {r['health']}" for r in sick]
    _out(data, as_json, "\n".join(lines), header=True)


_LOG_HEADERS = ("TIME", "", "STATUS", "MS", "#", "EVENT", "ID", "URL", "ERROR")
_LOG_WIDTHS = (8, 1, 6, 6, 2, 22, 69)  # the fixed columns of `log --follow`


def _log_cells(row: dict[str, str]) -> list[str]:
    when = time.strftime("%H:%M:%S", time.localtime(float(row.get("ts") or 0)))
    outcome = row.get("outcome", "")
    mark = {"delivered": "✓", "retry": "↻", "dead": "✗", "deferred": "…"}.get(outcome, "?")
    error = row.get("error", "")
    if row.get("next_s"):
        error += f" ({'released' if outcome == 'deferred' else 'retry'} in {row['next_s']} s)"
    status = row.get("status") or "---"
    cells = [when, mark, status, row.get("ms", "0"), row.get("attempt", ""), row.get("event", "")]
    return [
        printable(c, lines=False) for c in [*cells, row.get("id", ""), row.get("url", ""), error]
    ]


def _log_line(cells: list[str]) -> str:
    padded = [c.ljust(w) for c, w in zip(cells, _LOG_WIDTHS, strict=False)]
    return "  ".join([*padded, *cells[len(_LOG_WIDTHS) :]]).rstrip()


_LOG_NUMBERS: dict[str, Any] = {"ts": float, "attempt": int, "status": int, "ms": int}


def _log_json(row: dict[str, str]) -> str:
    """One attempt as JSON: numbers as numbers, and null for what it has not (no status)."""
    out: dict[str, Any] = dict(row)
    for name, kind in {**_LOG_NUMBERS, "next_s": float}.items():
        if name in row:
            out[name] = kind(row[name]) if row[name] else None
    return json.dumps(out)


@main.command()
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

    settings = _settings()
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


@main.group()
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
    from shahihooks import dead as dead_letters

    settings = _settings()
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
    _out(rows, as_json, text, header=bool(rows))
    del dead_letters


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

    settings = _settings()
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
    _out(row, as_json, text)


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
    since_s = _duration(since)
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
    settings = _settings()
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
    _out({"replayed": replayed}, as_json, f"replayed {len(replayed)} dead letter(s)")


@main.group()
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

    settings = _settings()
    return EndpointStore(state_redis(settings), settings)


def _endpoint_rows() -> list[dict[str, Any]]:
    from shahihooks.health import endpoint_health
    from shahihooks.stats import waiting_by_url

    settings = _settings()
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

    rows = _endpoint_rows()
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
    _out(rows, as_json, text, header=bool(rows))


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
    type=_STYLES,
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

    try:
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
    except ShahihooksError as exc:
        raise click.ClickException(str(exc)) from None
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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", "-p", default=8000, show_default=True, help="0: any free port.")
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    help="Verify with this (repeatable; it shows in `ps`: prefer --secret-env).",
)
@click.option(
    "--secret-env",
    "secret_envs",
    multiple=True,
    metavar="NAME",
    help="Verify with the secret in environment variable NAME (repeatable).",
)
@click.option("--status", default=200, show_default=True, help="Answer this (500 to fail).")
@click.option("--tls-cert", default=None, help="Serve HTTPS with this certificate (PEM).")
@click.option("--tls-key", default=None, help="Its private key (PEM), if not in --tls-cert.")
@click.option(
    "--self-signed",
    "self_signed",
    is_flag=True,
    help="Serve HTTPS with a fresh test CA (needs trustme); prints its CA file.",
)
@click.option("--count", default=0, help="Stop after this many requests (0: never).")
@click.option(
    "--php",
    is_flag=True,
    help="Verify as the page's PHP handler does: HMAC of json_encode(json_decode(body)).",
)
@click.option(
    "--max-body-bytes",
    default=MAX_BODY_BYTES,
    show_default=True,
    type=click.IntRange(1),
    help="Answer 413 to a larger body, unread.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per request.")
def listen(
    host: str,
    port: int,
    secrets: tuple[str, ...],
    secret_envs: tuple[str, ...],
    status: int,
    tls_cert: str | None,
    tls_key: str | None,
    self_signed: bool,
    count: int,
    php: bool,
    max_body_bytes: int,
    as_json: bool,
) -> None:
    """A local receiver that verifies and prints each delivery.

    Deliveries that do not verify get 401, as the page's handlers answer. With --php it
    verifies as the page's PHP handler does (only the php body style passes). Without
    --secret or --secret-env it verifies with SHAHIHOOKS_SECRET (and SHAHIHOOKS_OLD_SECRETS).

    \b
    Examples:
      shahihooks listen --port 8000 --self-signed     # verifies with $SHAHIHOOKS_SECRET
      shahihooks listen --secret-env PARTNER_SECRET   # the secret in $PARTNER_SECRET
      shahihooks listen --status 500      # fail on purpose, to watch retries
    """
    import threading

    from shahihooks.listen import Listener, serve

    if not 0 <= port <= 65535:  # said in one line (the socket would raise OverflowError)
        raise click.ClickException(f"--port {port} is not a port: use 1 to 65535 (0: any free)")
    done = threading.Event()

    def show(heard: Any, n: int) -> None:
        click.echo(json.dumps(heard.as_dict()) if as_json else paint(heard.line(n)))
        if count and n >= count:
            done.set()

    if self_signed:
        tls_cert, tls_key = _self_signed(host)
    listener = Listener(
        _listen_secrets(secrets + _env_secrets(secret_envs)),
        status,
        show,
        php=php,
        max_body_bytes=max_body_bytes,
    )
    try:
        server = serve(listener, host, port, tls_cert, tls_key)
    except OSError as exc:  # the port is taken, or the certificate cannot be read (SSLError)
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    scheme = "https" if tls_cert else "http"
    verifying = (
        "verifying" if listener.secrets else "NOT verifying: no --secret, no SHAHIHOOKS_SECRET"
    )
    click.echo(
        f"listening on {scheme}://{host}:{server.server_address[1]}/ "
        f"({verifying}{' as PHP' if php and listener.secrets else ''}; answering {status})",
        err=True,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        if listener.secrets:
            click.echo(f"{listener.received} received, {listener.verified} verified", err=True)
        else:
            click.echo(f"{listener.received} received, none verified (no secret)", err=True)


def _env_secrets(names: tuple[str, ...]) -> tuple[str, ...]:
    """The secrets in the environment variables `names` (--secret-env): none may be unset."""
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise click.BadParameter(
            f"the environment variable {missing[0]} is not set (or empty)",
            param_hint="--secret-env",
        )
    for name in names:
        secret_keys(os.environ[name], f"the secret in ${name} (--secret-env)")
    return tuple(os.environ[name] for name in names)


def _listen_secrets(given: tuple[str, ...]) -> list[str]:
    """--secret, else SHAHIHOOKS_SECRET; none (and no error) if the settings have none or
    are incomplete: a receiver needs no other setting to start."""
    if given:
        secret_keys(list(given), "--secret")  # too short or not base64: said now, named
        return list(given)
    try:
        return list(current().secrets)
    except ShahihooksError:
        names = ("SHAHIHOOKS_SECRET", "SHAHIHOOKS_OLD_SECRETS")
        try:
            return list(
                Settings.from_env({k: os.environ[k] for k in names if k in os.environ}).secrets
            )
        except ShahihooksError:
            return []


def _self_signed(host: str) -> tuple[str, str]:
    import os
    import tempfile

    try:
        import trustme
    except ImportError:
        raise click.ClickException(
            "--self-signed needs trustme: pip install 'shahihooks[test]'"
        ) from None
    folder = tempfile.mkdtemp(prefix="shahihooks-listen-")
    ca = trustme.CA()
    cert = ca.issue_cert(host, "localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(os.path.join(folder, "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(os.path.join(folder, "server.pem"))
    click.echo(
        f"test CA: {folder}/ca.pem (senders: SHAHIHOOKS_CA_BUNDLE={folder}/ca.pem)", err=True
    )
    return os.path.join(folder, "server.pem"), os.path.join(folder, "server.pem")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", default=8808, show_default=True, type=int, help="Port (0: any free).")
@click.option(
    "--refresh", default=10, show_default=True, type=click.IntRange(0), help="Page reload, s."
)
def dashboard(host: str, port: int, refresh: int) -> None:
    """A web dashboard at / and Prometheus metrics at /metrics, for the whole deployment.

    Endpoints and their state, charts of the last hours, dead letters with replay, the
    event catalogue. Basic auth from SHAHIHOOKS_DASHBOARD_AUTH=user:password; without it,
    it serves on a loopback address only.

    \b
    Examples:
      shahihooks dashboard
      SHAHIHOOKS_DASHBOARD_AUTH=ops:s3cret shahihooks dashboard --host 0.0.0.0
    """
    from shahihooks.dashboard import serve

    try:
        server = serve(_settings(), host, port, refresh)
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from None
    bound = server.server_address[1]
    click.echo(f"dashboard on http://{host}:{bound}/ (metrics: /metrics)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@main.command()
@click.option("--no-worker-check", is_flag=True, help="Skip pinging workers.")
@click.option("--ack-lost", is_flag=True, help="Forget a reported loss of the state first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(no_worker_check: bool, ack_lost: bool, as_json: bool) -> None:
    """Run the page's troubleshooting checklist against the live configuration.

    Webhooks enabled, events selected, secret set, Redis reachable, a worker alive, and
    for each endpoint: https, public address, TCP, TLS certificate (and expiry), recent
    failures. Exits 1 if anything is wrong.

    \b
    Example:
      shahihooks doctor
    """
    from shahihooks import doctor as checklist

    if ack_lost:
        _acknowledge_loss()
    checks = checklist.run(_settings(), ping_workers=not no_worker_check)
    _out([c.as_dict() for c in checks], as_json, "\n".join(c.line() for c in checks))
    sys.exit(0 if all(c.ok for c in checks) else 1)


def _acknowledge_loss() -> None:
    from shahihooks.connections import state_redis
    from shahihooks.epoch import acknowledge
    from shahihooks.keys import Keys

    settings = _settings()
    found = acknowledge(state_redis(settings), Keys(settings.prefix))
    click.echo("loss of the state acknowledged" if found else "no loss was reported", err=True)


def _warn_if_lost(settings: Settings) -> None:
    """A loss of the state, on stderr (stdout stays exact for --json)."""
    from shahihooks.connections import state_redis
    from shahihooks.epoch import lost
    from shahihooks.keys import Keys

    loss = lost(state_redis(settings), Keys(settings.prefix))
    if loss is not None:
        click.echo(paint(f"✗ {loss.text()} (shahihooks doctor)"), err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
