"""The dashboard's HTML pages. Every value is HTML-escaped here: URLs, errors and response
bodies come from receivers and operators, and may hold markup."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from html import escape
from urllib.parse import quote

from shahihooks.dashboard.charts import chart
from shahihooks.dashboard.data import EndpointRow, Overview
from shahihooks.dead import DeadLetter
from shahihooks.events import Event
from shahihooks.overview import Cell

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#223;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:baseline}
header a{color:#cde}header b{margin-right:16px}main{padding:12px 16px}
table{border-collapse:collapse;background:#fff;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef}td.n{text-align:right}.err{color:#a00;max-width:32em;overflow-wrap:anywhere}
.ok{color:#070}.limited{color:#a60}.open,.disabled{color:#a00;font-weight:bold}
.cards{display:flex;gap:12px}.card{background:#fff;border:1px solid #ddd;padding:6px 12px}
.card b{font-size:20px;display:block}.note{background:#efe;border:1px solid #8c8;padding:6px}
form{display:inline}svg.chart{background:#fff;border:1px solid #ddd;margin:4px 0}
svg .title{font-weight:bold;font-size:12px}svg .tick{font-size:10px;fill:#555}
svg .axis{stroke:#888}svg .grid{stroke:#eee}
"""


def page(title: str, body: str, refresh_s: int) -> str:
    """A whole page: it reloads itself every `refresh_s` seconds (0: never)."""
    meta = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s > 0 else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}'
        '<link rel="icon" href="data:,">'  # no request for /favicon.ico
        f"<title>{escape(title)} · shahihooks</title><style>{STYLE}</style></head><body>"
        '<header><b>shahihooks</b><a href="/">Endpoints</a><a href="/dead">Dead letters</a>'
        '<a href="/events">Events</a><a href="/metrics">Metrics</a></header>'
        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )


def when(ts: float | None) -> str:
    return "—" if not ts else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    return "> 30 s" if value == float("inf") else f"{value:.0f} ms"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], table_id: str, empty: str) -> str:
    """A table of cells already escaped (or markup made here)."""
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    if not body:
        return f'<p id="{table_id}" class="empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'


def td(text: object, cls: str = "") -> str:
    return f'<td class="{cls}">{escape(str(text))}</td>' if cls else f"<td>{escape(str(text))}</td>"


def _state(row: EndpointRow) -> str:
    h = row.health
    detail = {
        "limited": f" to {h.limit}",
        "open": f" until {when(h.open_until)}",
        "disabled": f" since {when(h.disabled_since)}" if h.disabled_since else "",
    }.get(h.state, "")
    return td(h.state + detail, h.state)


def _endpoint_line(row: EndpointRow) -> list[str]:
    h = row.health
    rate = "—" if row.success_rate is None else f"{100 * row.success_rate:.1f} %"
    return [
        _state(row),
        f'<td><a href="/endpoints/{quote(h.tag)}">{escape(h.url)}</a></td>',
        td(rate, "n"),
        td(ms(row.day.quantile_ms(0.5)), "n"),
        td(ms(row.day.quantile_ms(0.95)), "n"),
        td(f"{row.per_minute:.2f}", "n"),
        td(row.backlog, "n"),
        td(row.retrying, "n"),
        td(h.last_error, "err"),
    ]


def index(view: Overview, refresh_s: int) -> str:
    q = view.queues
    cards = (
        '<div class="cards">'
        f'<div class="card"><b id="dead-count">{q.dead_letters}</b>'
        '<a href="/dead">dead letters</a></div>'
        f'<div class="card"><b>{q.waiting_retries}</b>retries waiting</div>'
        f'<div class="card"><b>{sum(q.backlog.values())}</b>in backlogs</div>'
        f'<div class="card"><b>{q.lag_s:.1f} s</b>delivery lag</div></div>'
    )
    headers = [
        "State",
        "Endpoint",
        "Success (24 h)",
        "p50",
        "p95",
        "Attempts/min",
        "Backlog",
        "Retrying",
        "Last error",
    ]
    table = _table(
        headers,
        (_endpoint_line(r) for r in view.rows),
        "endpoints",
        "no endpoints: set SHAHIHOOKS_URLS or use `shahihooks endpoints add URL`",
    )
    return page("Endpoints", cards + table, refresh_s)


def _hour_labels(hours: int, now: float) -> list[str]:
    first = int(now // 3600) - hours + 1
    return [time.strftime("%H:00", time.localtime((first + i) * 3600)) for i in range(hours)]


def charts(series: list[Cell], now: float) -> str:
    labels = _hour_labels(len(series), now)
    counts = chart(
        "Attempts per hour",
        labels,
        [
            ("delivered", "#3a3", [float(c.ok) for c in series]),
            ("failed", "#c33", [float(c.failed) for c in series]),
        ],
    )
    latency = chart(
        "Latency per hour",
        labels,
        [
            ("mean", "#36c", [c.ms / c.n if c.n else 0.0 for c in series]),
            ("p95", "#c80", [_finite(c.quantile_ms(0.95)) for c in series]),
        ],
        " ms",
    )
    return f'<div id="charts">{counts}<br>{latency}</div>'


def _finite(value: float | None) -> float:
    if value is None:
        return 0.0
    return 30_000.0 if value == float("inf") else value


def recover_form(tag: str, csrf: str, label: str = "enable --recover") -> str:
    return (
        f'<form method="post" action="/endpoints/{quote(tag)}/enable">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<button type="submit" name="recover" value="1">{escape(label)}</button></form>'
    )


def endpoint(
    row: EndpointRow,
    series: list[Cell],
    log: list[dict[str, str]],
    csrf: str,
    refresh_s: int,
    now: float,
) -> str:
    h = row.health
    facts = [
        ("state", h.state),
        ("limit on attempts in flight", str(h.limit) if h.limit else "none"),
        ("in flight", str(h.in_flight)),
        ("circuit open until", when(h.open_until)),
        ("disabled since", when(h.disabled_since)),
        ("disabled because", h.disabled_reason or "—"),
        ("failing since", when(h.failing_since)),
        ("last success", when(h.last_success_at)),
        ("last error", h.last_error or "—"),
    ]
    info = "<table>" + "".join(f"<tr><th>{escape(k)}</th>{td(v)}</tr>" for k, v in facts)
    info += "</table>"
    action = recover_form(h.tag, csrf) if h.state != "unlisted" else ""
    rows = (
        [
            td(e.get("ts") and when(float(e["ts"]))),
            td(e.get("event", "")),
            td(e.get("attempt", ""), "n"),
            td(e.get("outcome", "")),
            td(e.get("status", ""), "n"),
            td(e.get("ms", ""), "n"),
            td(e.get("error", ""), "err"),
        ]
        for e in reversed(log)
    )
    table = _table(
        ["When", "Event", "Attempt", "Outcome", "Status", "ms", "Error"],
        rows,
        "log",
        "no attempts in the log",
    )
    body = f"{info}{action}{charts(series, now)}<h2>Recent attempts</h2>{table}"
    return page(h.url, body, refresh_s)


def dead_page(
    total: int, letters: list[DeadLetter], tags: dict[str, str], csrf: str, note: str, refresh: int
) -> str:
    urls: dict[str, str] = {}
    for letter in letters:
        urls.setdefault(letter.url, tags.get(letter.id, ""))
    groups = _table(
        ["Endpoint", "Dead letters shown", ""],
        (
            [
                td(url),
                td(sum(d.url == url for d in letters), "n"),
                f"<td>{recover_form(tag, csrf)}</td>" if tag else td(""),
            ]
            for url, tag in sorted(urls.items())
        ),
        "dead-endpoints",
        "",
    )
    table = _table(
        ["Died", "Delivery", "Event", "Attempts", "Endpoint", "Reason", ""],
        (
            [
                td(when(d.died_at)),
                td(d.id),
                td(d.event),
                td(d.attempts, "n"),
                td(d.url),
                td(d.reason, "err"),
                f"<td>{_replay_form(d.id, csrf)}</td>",
            ]
            for d in letters
        ),
        "dead",
        "no dead letters",
    )
    shown = f"<p>{total} dead letter(s); the newest {len(letters)} shown.</p>"
    flash = f'<p class="note" id="note">{escape(note)}</p>' if note else ""
    return page("Dead letters", flash + shown + groups + table, refresh)


def _replay_form(delivery_id: str, csrf: str) -> str:
    return (
        '<form method="post" action="/dead/replay">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<input type="hidden" name="id" value="{escape(delivery_id)}">'
        '<button type="submit" class="replay">Replay</button></form>'
    )


def events_page(events: Iterable[Event], refresh_s: int) -> str:
    table = _table(
        ["Event", "When", "Data fields", "Throttled by", "Kind"],
        (
            [
                td(e.name),
                td(e.description),
                td(", ".join(e.fields)),
                td(e.throttle_field or ""),
                td("custom" if e.custom else "built-in"),
            ]
            for e in events
        ),
        "events",
        "no events",
    )
    return page("Event catalogue", table, refresh_s)


def message(title: str, text: str) -> str:
    return page(title, f"<p>{escape(text)}</p>", 0)
