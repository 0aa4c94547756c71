"""The bench's results as text: the tables `make bench` prints, with the targets of issues
#10 and #15 marked met or MISSED."""

from __future__ import annotations

from typing import Any

from bench import isolation, luaprofile, redisstats
from bench.systems import Setup
from bench.throughput import Cells, scaling, summary, table
from bench.waiting import FAN_OUT


def report(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [
        "",
        "=" * 96,
        f"shahihooks bench: {r['command']}",
        f"{m['cpus']} cores, Python {m['python']}, commit {m['commit']}, load at start "
        f"{m['load_at_start'][0]:.2f}; {r['seconds'] / 60:.1f} min"
        + ("; QUICK: sizes too small for figures" if r["quick"] else ""),
        f"receiver ceiling (4 clients, keep-alive): {r['receiver_ceiling_per_s']:,.0f} requests/s",
    ]
    for key, why in r.get("systems_not_run", {}).items():
        out.append(f"not run: {key}: {why}")
    for name, why in r.get("errors", {}).items():
        out.append(f"FAILED: {name}: {why}")
    for name, section in SECTIONS:
        if name in r:
            out += ["", *section(r)]
    return "\n".join(out)


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def throughput_lines(r: dict[str, Any]) -> list[str]:
    keys = list(r["systems"])
    setups = [Setup.parse(s) for s in r["setups"]]
    saved = r["throughput"]
    t = summary(
        Cells(saved["rates"], saved.get("failures", {}), saved.get("redis", {})), keys, setups
    )
    sizes = r["sizes"]
    out = [
        f"Throughput: deliveries/s (C: tasks/s), mean of {sizes['rounds']} interleaved "
        f"round(s), {sizes['n']:,} per cell ({sizes['peer_n']:,} for P)",
        "  " + ", ".join(f"{k} = {name}" for k, name in r["systems"].items()),
    ]
    out.append(table(t, keys, setups))
    for key, failures in t.get("failures", {}).items():
        for setup, why in failures.items():
            out.append(f"  {key} at {setup} failed: {why[0]}")
    per, vs = t["per_setup"], t["best_vs_best"]
    if "S/N" in vs:
        worst, lowest = lowest_setup(per, "S/N")
        out.append(
            f"  target S >= 1.1x N at every shared setup: {met(lowest >= 1.1)} "
            f"(lowest {lowest:.2f}x at {worst}); best vs best {vs['S/N']:.2f}x: "
            f"{met(vs['S/N'] >= 1.1)}"
        )
    if "S/C" in vs:
        out.append(f"  target S >= 0.6x C best vs best: {vs['S/C']:.2f}x, {met(vs['S/C'] >= 0.6)}")
    if "S/S0" in vs:
        worst, lowest = lowest_setup(per, "S/S0")
        out.append(
            f"  no regression (S against S0, the core before): best vs best {vs['S/S0']:.2f}x, "
            f"lowest {lowest:.2f}x at {worst}"
        )
        out.append("  before -> after, against the baselines at the same setups:")
        for label, row in per.items():
            parts = [
                f"{b} {row[f'S0/{b}']:.2f}x -> {row[f'S/{b}']:.2f}x"
                for b in ("N", "C")
                if row.get(f"S0/{b}") and row.get(f"S/{b}")
            ]
            out.append(f"    {label:<14} " + ", ".join(parts))
        parts = [
            f"{b} {vs[f'S0/{b}']:.2f}x -> {vs[f'S/{b}']:.2f}x"
            for b in ("N", "C")
            if f"S0/{b}" in vs and f"S/{b}" in vs
        ]
        out.append(f"    {'best vs best':<14} " + ", ".join(parts))
    if "P/N" in vs:
        out.append(f"  peer against N, best vs best: {vs['P/N']:.2f}x")
    if "SR/S" in vs:
        by_setup = ", ".join(
            f"{label} {row['SR/S']:.2f}x" for label, row in per.items() if row.get("SR/S")
        )
        out.append(
            f"  RabbitMQ broker (SR) against the Redis broker (S): best vs best "
            f"{vs['SR/S']:.2f}x; {by_setup}"
        )
    curve = scaling(t, keys, setups)
    if curve:
        out += ["Scaling by worker processes (same harness, rate and x the 1-process rate):", curve]
    return out + redis_lines(t["redis_per_delivery"])


HOLDS = {"state": "shahihooks' state", "both": "state and broker", "broker": "its broker"}


def redis_lines(spent: dict[str, Any]) -> list[str]:
    """The Redis's CPU and commands per delivery, for S, SR and N (issue #23)."""
    systems = {k: v for k, v in spent["systems"].items() if k in ("S", "SR", "N")}
    if not systems:
        return []
    out = [
        "Redis per delivery, each system alone on the bench's redis-server (INFO cpu, INFO "
        "commandstats; every cell, workers started to stopped, the emit or enqueue beside):",
        f"  {'':<3} {'holds':<18} {'CPU µs: emit':>12} {'+ delivering':>12} {'= total':>8} "
        f"{'commands':>9} {'µs in scripts':>14} {'other commands':>15} {'outside':>8}",
    ]
    for key, x in systems.items():
        w, e = x["whole"], x["enqueue"]
        outside = w["outside_commands_us"]
        out.append(
            f"  {key:<3} {HOLDS.get(x['holds'], x['holds']):<18} "
            + (f"{e['cpu_us']:>12.0f} " if e else f"{'-':>12} ")
            + f"{x['deliver']['cpu_us']:>12.0f} "
            f"{x['cpu_us']:>8.0f} {w['calls']:>9.1f} {w['scripts_us']:>14.0f} "
            f"{w['other_commands_us']:>15.0f} "
            + (f"{outside:>8.0f}" if outside is not None else f"{'-':>8}")
        )
    out.append(
        "  (µs in scripts: FCALL/EVALSHA, their commands inside included; other commands: "
        "inside scripts or the client's own; outside: CPU in no command's execution, the "
        "network, parsing and replies)"
    )
    if any((x["whole"]["outside_commands_us"] or 0) < 0 for x in systems.values()):
        out.append(
            "  (a negative outside: commandstats' µs are wall-clock, and Redis was descheduled "
            "inside commands: the machine was loaded; the CPU figures stand)"
        )
    for key, x in systems.items():
        out.append(f"  {key} top commands, calls per delivery (µs per call): " + top(x["whole"]))
        if (x.get("log_entries") or 0) > 1.01:
            out.append(
                f"  {key}: {x['log_entries']:.2f} log entries per delivery: some deliveries were "
                "deferred (their endpoint's limit of attempts in flight) or retried, and the "
                "figures include that work"
            )
    ratios = spent["ratios"]
    for pair, target in (("SR/N", "<= 0.5x, aim 0.35x"), ("S/N", "")):
        if pair not in ratios:
            continue
        by_setup = ", ".join(f"{s} {v:.2f}x" for s, v in ratios[f"{pair} by setup"].items())
        verdict = f" (issue #23: {target}): {met(ratios[pair] <= 0.5)}" if target else ""
        out.append(
            f"  {pair.replace('/', ' / ')} Redis CPU per delivery: {ratios[pair]:.2f}x{verdict}; "
            f"delivering only {ratios[f'{pair} delivering']:.2f}x; by setup {by_setup}"
        )
    return out + floor_lines(systems)


def floor_lines(systems: dict[str, Any]) -> list[str]:
    """What SR's round trips alone cost, priced at one round trip of N's: N's enqueue (one
    LPUSH, answered). A bound from below that no cheaper script can pass."""
    sr, n = systems.get("SR"), systems.get("N")
    if not sr or not n or not n["enqueue"] or not n["cpu_us"]:
        return []
    trip = n["enqueue"]["cpu_us"]
    calls = sum(sr["whole"]["by_command"].get(c, {}).get("calls", 0) for c in ("fcall", "evalsha"))
    floor = calls * trip / n["cpu_us"]
    most = 0.5 * n["cpu_us"] / trip
    return [
        f"  SR floor: {calls:.2f} calls per delivery (emit, begin, finish), each a round trip; "
        f"priced at one round trip of N's (its enqueue, one LPUSH: {trip:.0f} µs) they come to "
        f"{calls * trip:.0f} µs = {floor:.2f}x N before any script runs; <= 0.5x N allows "
        f"{most:.1f} round trips per delivery"
    ]


def top(per: dict[str, Any]) -> str:
    return redisstats.top(per["by_command"])


def lowest_setup(per: dict[str, dict[str, Any]], ratio: str) -> tuple[str, float]:
    """The setup where `ratio` (e.g. "S/N") is lowest, and its value."""
    shared = {s: row[ratio] for s, row in per.items() if row.get(ratio)}
    worst = min(shared, key=shared.__getitem__)
    return worst, shared[worst]


def events_lines(r: dict[str, Any]) -> list[str]:
    e = r["events"]
    return [
        f"Task events (-E) at {e['setup']}: without {fmt(e['without'])}, with {fmt(e['with'])} "
        f"deliveries/s: cost {e['cost']:.0%} (target <= 15 %: {met(e['cost'] <= 0.15)})"
    ]


def fmt(values: list[float]) -> str:
    return "/".join(f"{v:.0f}" for v in values)


def commands_lines(r: dict[str, Any]) -> list[str]:
    out = ["Redis commands per delivery (INFO commandstats, enqueue to acknowledgement):"]
    for key, c in r["commands"].items():
        top = sorted(c["by_command"].items(), key=lambda kv: -kv[1])[:12]
        ours = (
            f"EVALSHA (shahihooks' calls) {c['client_calls_of_ours']:.2f}; " if key == "S" else ""
        )
        out.append(
            f"  {key}: {c['total']:.1f} in all; {ours}" + ", ".join(f"{k} {v:.2f}" for k, v in top)
        )
    return out


def luaprofile_lines(r: dict[str, Any]) -> list[str]:
    x = r["luaprofile"]
    scripts = x["scripts"]
    fcalls = (
        r.get("throughput", {})
        .get("redis_per_delivery", {})
        .get("systems", {})
        .get("SR", {})
        .get("whole", {})
        .get("by_command", {})
        .get("fcall", {})
        .get("calls")
    )
    out = [
        f"Lua profile of the state scripts: {x['n']:,} deliveries driven one call at a time "
        "(broker elsewhere, as SR), INFO commandstats reset before each script; µs per call:",
        f"  {'script':<10} {'per delivery':>12} {'FCALL µs':>9} {'commands':>9} {'Lua':>7} "
        f"{'Redis CPU':>10}   commands inside, per call (µs per call)",
    ]
    for name, s in scripts.items():
        per = "1" if name in luaprofile.IN_BEGIN_AND_FINISH else "-"
        out.append(
            f"  {name:<10} {per:>12} {s['fcall_us']:>9.1f} {s['commands_us']:>9.1f} "
            f"{s['lua_us']:>7.1f} {s['cpu_us']:>10.1f}   {s['commands_per_call']:.1f}: "
            + redisstats.top(s["inside"], 6)
        )
    mine = [scripts[k] for k in luaprofile.IN_BEGIN_AND_FINISH if k in scripts]
    fcall, commands, lua, cpu = (
        sum(s[f] for s in mine) for f in ("fcall_us", "commands_us", "lua_us", "cpu_us")
    )
    out.append(
        f"  a delivery's emit + begin + finish: FCALL {fcall:.0f} µs = commands {commands:.0f} "
        f"+ Lua {lua:.0f} ({lua / fcall:.0%}); Redis CPU {cpu:.0f} µs, {cpu - fcall:.0f} of it "
        "outside the scripts (reading, parsing, answering)"
    )
    if fcalls is not None:
        out.append(
            f"  the throughput run's SR made {fcalls:.2f} FCALLs per delivery: "
            f"{fcalls - len(mine):.2f} beyond emit, begin and finish (mover steps, watermark)"
        )
    return out


def waiting_lines(r: dict[str, Any]) -> list[str]:
    w = r["waiting"]
    o, n, mv, b = w["ours"], w["naive"], w["mover"], w["backlog"]
    per, slope = o["rss_bytes_per_waiting"], o["rss_slope_bytes_per_waiting"]
    split = ", ".join(f"{k} {v:.0f}" for k, v in o["redis_split_bytes_per_waiting"].items() if v)
    beyond = o["redis_beyond_body_per_waiting"]
    return [
        f"Waiting deliveries: {o['count']:,} retries an hour away, workers {o['setup']} "
        f"(warmed up by {r['sizes']['warm']:,} deliveries first):",
        f"  worker RSS per waiting delivery: {per:,.0f} bytes against the warm worker "
        f"(target <= 1 KB: {met(per <= 1024)}); {o['rss_bytes_per_waiting_vs_cold']:,.0f} "
        f"against the cold one; slope from {o['samples'][0]['waiting']:,} to "
        f"{o['samples'][-1]['waiting']:,} waiting: {slope:,.0f} bytes each",
        f"  RSS (MB) cold {o['cold_rss_kb'] / 1024:.0f}, warm {o['warm_rss_kb'] / 1024:.0f}, "
        f"then by waiting: {curve(o)}; messages held by workers: {o['messages_held_by_workers']}",
        f"  naive task, {n['count']:,} retries held as ETA messages: "
        f"{n['rss_bytes_per_waiting']:,.0f} bytes each against the warm worker, slope "
        f"{n['rss_slope_bytes_per_waiting']:,.0f}; RSS (MB) by held: {curve(n)}",
        f"  Redis per waiting delivery: {o['redis_bytes_per_waiting']:.0f} bytes, "
        f"{beyond:.0f} beyond its body (bodies {o['body_bytes_each']:.0f} bytes per emit, "
        f"shared by its {FAN_OUT} deliveries); MEMORY USAGE per delivery: {split}",
        f"  Redis per delivery in a rate-limit backlog ({b['in_backlogs']:,}): "
        f"{b['redis_bytes_per_deferred']:.0f} bytes, "
        f"{b['redis_beyond_body_per_deferred']:.0f} beyond its body",
        f"  failed attempts: {o['attempts_per_s']:,.0f}/s (shahihooks), "
        f"{n['attempts_per_s']:,.0f}/s (naive)",
        f"  mover: {mv['count']:,} made due at once, published at "
        f"{mv['published_per_s']:,.0f} deliveries/s by one worker ({mv['seconds']:.1f} s)",
    ]


def curve(x: dict[str, Any]) -> str:
    return ", ".join(f"{s['waiting']:,}: {s['rss_kb'] / 1024:.0f}" for s in x["samples"][::3])


def backlog_lines(r: dict[str, Any]) -> list[str]:
    rows = r["backlog"]
    shallow, deep = (rows[k] for k in sorted(rows, key=int))
    ratio = deep["total"] / shallow["total"]
    return [
        "Backlog depth: Redis commands per delivery released from one URL's backlog:",
        *(
            f"  {int(k):>6} deep (+ the released): {v['total']:.2f} "
            f"({v['client_calls_of_ours']:.2f} EVALSHA)"
            for k, v in sorted(rows.items(), key=lambda kv: int(kv[0]))
        ),
        f"  deep / shallow: {ratio:.2f}x (target: equal)",
    ]


def recovery_lines(r: dict[str, Any]) -> list[str]:
    x = r["recovery"]
    return [
        f"Recovery after SIGKILL (default timings, rate limit off): worker killed after "
        f"{x['killed_after']} of {x['n']}; last delivery {x['seconds_to_last_delivery']:.1f} s "
        f"after the kill; {x['delivered']} delivered, {x['duplicates']} duplicates"
    ]


def emit_lines(r: dict[str, Any]) -> list[str]:
    e = r["emit"]
    a, b = e["emit"], e["apply_async"]
    return [
        f"emit to 10 endpoints: {a['enqueued_per_s']:,.0f} deliveries enqueued/s (call p50 "
        f"{a['p50_ms']:.2f} ms, p99 {a['p99_ms']:.2f} ms); plain apply_async loop "
        f"{b['enqueued_per_s']:,.0f}/s (p50 {b['p50_ms']:.2f}, p99 {b['p99_ms']:.2f} ms): "
        f"{e['ratio']:.1f}x, p99 {e['p99_ratio']:.2f}x"
    ]


def isolation_lines(r: dict[str, Any]) -> list[str]:
    x = r["isolation"]
    h = x["hanging"]
    return [
        f"Endpoint isolation: one worker ({x['setup']}), timeout 15 s, rate limit off, load "
        f"{x['load_at_start']:.2f}; a healthy endpoint's latency (emit to arrival), "
        f"{x['n']} emits:",
        f"  alone:                {isolation.line(x['alone'])}",
        *([f"  beside a healthy one: {isolation.line(x['paired'])}"] if "paired" in x else []),
        f"  beside a hanging one: {isolation.line(x['beside'])}",
        f"  beside the hanging one / alone: p50 {x['p50_ratio']:.2f}x, p99 {x['p99_ratio']:.2f}x"
        + (
            f"; / beside a healthy one (as many messages): p50 {x['p50_ratio_paired']:.2f}x, "
            f"p99 {x['p99_ratio_paired']:.2f}x"
            if "paired" in x
            else ""
        )
        + " (goal: the same within noise)",
        f"  slots held by the hanging endpoint (every {h['every_s']:g} s, {h['watch_s']:g} s "
        f"from the first emit): min {h['min']}, max {h['max']}; {isolation.runs(h['series'])}",
        f"  requests it received by then: {h['series'][-1]['requests'] if h['series'] else 0}",
    ]


SECTIONS = (
    ("throughput", throughput_lines),
    ("events", events_lines),
    ("commands", commands_lines),
    ("luaprofile", luaprofile_lines),
    ("waiting", waiting_lines),
    ("backlog", backlog_lines),
    ("recovery", recovery_lines),
    ("emit", emit_lines),
    ("isolation", isolation_lines),
)
