"""The benchmark harness (`make bench`): its bookkeeping as pure functions, and its smallest
piece run for real (one setup, N, C, S and S on RabbitMQ, 200 items each: about 20 s)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from unittest.mock import ANY

import pytest

from bench import clusterscale, isolation, luaprofile, redisstats
from bench.budget import parse_raw, part_of
from bench.cluster import shards_of, slot_range
from bench.systems import Setup
from bench.throughput import Cells, summary, table
from bench.world import free_port
from tests.conftest import wait_until


def test_setups_parse_into_worker_processes() -> None:
    assert Setup.parse("threads 2x16").worker_options() == [["-P", "threads", "-c", "16"]] * 2
    assert Setup.parse("prefork 4").worker_options() == [["-P", "prefork", "-c", "4"]]
    assert Setup.parse(" threads 3x8 ").label == "threads 3x8"
    with pytest.raises(ValueError, match="threads PxT"):
        Setup.parse("threads 8")


def test_a_profile_sample_goes_to_the_most_specific_part_of_a_delivery() -> None:
    trace = "trace_task (celery/app/trace.py:453)"
    attempt = "attempt (/src/shahihooks/delivery.py:99)"
    loop = "asynloop (celery/worker/loops.py:97)"
    assert part_of([trace, attempt, "begin (shahihooks/state.py:330)", "read (redis/c.py:1)"]) == (
        "shahihooks' Redis steps (begin, finish)"
    )
    assert part_of([trace, attempt, "send (shahihooks/transport.py:80)"]) == "the HTTP request"
    assert part_of([trace, attempt, "sign (shahihooks/signing.py:40)"]) == "signing the body"
    assert part_of([trace, attempt]) == "the rest of the attempt (body, outcome, log)"
    assert part_of([trace, "ack (shahihooks/broker.py:70)"]) == (
        "kombu: taking and acknowledging messages"
    )
    receiving = [loop, "on_readable (kombu/redis.py:1)", "task (celery/worker/strategy.py:9)"]
    assert part_of(receiving) == "Celery: receiving a message"
    assert part_of([loop]) == "Celery: receiving a message"
    assert part_of([trace]) == "Celery: running a task (trace, request, pool)"
    assert part_of(["run (threading.py:1)"]) == "other (threads, loop, logging)"
    raw = f"{trace};{attempt} 3\n{trace};{attempt};sign (shahihooks/signing.py:4) 2\nnoise\n"
    assert parse_raw(raw) == {
        "the rest of the attempt (body, outcome, log)": 3,
        "signing the body": 2,
    }


def test_each_system_best_is_compared_with_the_others_best() -> None:
    setups = [Setup.parse("threads 1x16"), Setup.parse("prefork 2")]
    cells = Cells()
    for setup, n, c, s in (("threads 1x16", 300, 900, 400), ("prefork 2", 500, 1000, 350)):
        cells.add("N", setup, n)
        cells.add("C", setup, c)
        cells.add("S", setup, s)
        cells.add("S", setup, s + 100)  # two rounds: the mean counts
    result = summary(cells, ["N", "C", "S"], setups)
    assert result["best"]["N"] == {"setup": "prefork 2", "rate": 500}
    assert result["best"]["S"] == {"setup": "threads 1x16", "rate": 450}
    assert result["best_vs_best"]["S/N"] == pytest.approx(450 / 500)
    assert result["per_setup"]["threads 1x16"]["S/N"] == pytest.approx(450 / 300)
    assert "best vs best" in table(result, ["N", "C", "S"], setups)


def test_smallest_piece_of_quick_mode_runs_every_baseline_at_the_same_setup(
    tmp_path: Path, repo_root: Path
) -> None:
    out = tmp_path / "bench.json"
    argv = [sys.executable, "-m", "bench.run", "--quick", "--only", "throughput,luaprofile"]
    argv += ["--systems", "N,C,S,SR", "--setups", "threads 1x4", "--n", "200", "--json", str(out)]
    done = subprocess.run(argv, cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["errors"] == {}
    row = results["throughput"]["per_setup"]["threads 1x4"]
    assert all(row[k] > 0 for k in ("N", "C", "S", "S/N", "S/C", "SR", "SR/S"))  # SR: RabbitMQ
    assert results["throughput"]["failures"] == {}
    assert "best vs best" in done.stdout
    spent = results["throughput"]["redis_per_delivery"]
    assert all(spent["systems"][k]["cpu_us"] > 0 for k in ("N", "S", "SR"))
    # shahihooks' state: emit, begin and finish at least (each FCALL), the mover's steps too
    assert spent["systems"]["SR"]["whole"]["by_command"]["fcall"]["calls"] >= 3
    emit_calls = spent["systems"]["SR"]["enqueue"]["by_command"]["fcall"]["calls"]
    assert emit_calls == pytest.approx(1, abs=0.01)  # (and the library's load, if first)
    assert spent["ratios"]["SR/N"] > 0
    assert "SR / N Redis CPU per delivery" in done.stdout
    scripts = results["luaprofile"]["scripts"]
    assert {"emit", "begin", "finish", "claim", "watermark"} <= set(scripts)
    assert scripts["begin"]["calls"] == scripts["finish"]["calls"] == 200
    assert all(
        scripts[k]["fcall_us"] >= scripts[k]["commands_us"] > 0 for k in ("emit", "begin", "finish")
    )
    assert "HMGET" in done.stdout  # begin's record, among the commands inside


def test_redis_spent_per_delivery_splits_scripts_from_the_rest_of_its_cpu() -> None:
    before = redisstats.Reading(1_000.0, {"fcall": (10, 500.0), "info": (3, 30.0)})
    after = redisstats.Reading(
        6_000.0, {"fcall": (30, 2_500.0), "hmget": (40, 200.0), "info": (5, 50.0)}
    )
    spent = redisstats.between(before, after, 10)
    assert spent == {
        "n": 10,
        "cpu_us": 5_000.0 - 20,  # less the bench's own INFO
        "commands": {"fcall": [20, 2_000.0], "hmget": [40, 200.0]},
    }
    per = redisstats.per_item(spent, "state")
    assert per["cpu_us"] == 498
    assert per["calls"] == 6  # the bench's own INFO is not counted
    assert per["scripts_us"] == 200
    assert per["other_commands_us"] == 20  # inside the scripts, on a Redis of state only
    assert per["outside_commands_us"] == 298
    assert per["by_command"]["hmget"] == {"calls": 4, "usec_per_call": 5}
    assert redisstats.per_item(spent, "both")["outside_commands_us"] is None
    broker = {"n": 10, "cpu_us": 1_000.0, "commands": {"brpop": [10, 100.0]}}
    assert redisstats.per_item(broker, "broker")["outside_commands_us"] == 90
    two = redisstats.merged([spent, spent])
    assert two is not None
    assert two["n"] == 20
    assert two["commands"]["fcall"] == [40, 4_000.0]
    enqueue = {"n": 5, "cpu_us": 100.0, "commands": {"lpush": [5, 10.0]}}
    whole = redisstats.plus(spent, enqueue)  # the enqueue of 5 stands for the 10
    assert whole["cpu_us"] == 4_980 + 200
    assert whole["commands"]["lpush"] == [10, 20.0]


def test_cluster_primaries_hold_whole_shards_and_the_busiest_sets_the_ceiling() -> None:
    assert shards_of(3) == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15]]
    assert shards_of(1) == [list(range(16))]
    assert slot_range([0, 1, 2, 3, 4, 5]) == (0, 6 * 1024 - 1)
    assert slot_range([11, 12, 13, 14, 15]) == (11 * 1024, 16_383)
    assert clusterscale.ceilings([40.0, 60.0]) == {
        "total_us": 100.0,
        "per_core_per_s": 10_000.0,  # 1e6 / 100 µs over both primaries
        "ceiling_per_s": 1e6 / 60,  # the busiest primary's
    }

    def cell(us: float, fcalls: int) -> dict[str, object]:
        return {"n": 10, "cpu_us": us * 10, "commands": {"fcall": [fcalls * 10, 50.0]}}

    spent = {
        "single": ([500.0, 700.0], [[cell(100, 3)], [cell(120, 3)]]),
        "2": ([400.0], [[cell(70, 2), cell(50, 1)]]),
    }
    result = clusterscale.summary(spent, 10, 32, Setup.parse("threads 2x16"), 2)
    one, two = result["configurations"]["single"], result["configurations"]["2"]
    assert (one["rate"], one["total_us"], one["masters"][0]["fcalls"]) == (600, 110, 3)
    assert [m["fcalls"] for m in two["masters"]] == [2, 1]
    assert two["vs_single"] == pytest.approx(120 / 110)
    assert two["ceiling_per_s"] == pytest.approx(1e6 / 70)
    text = clusterscale.table(result)
    assert "cluster, 2 primaries" in text
    assert "70 + 50" in text
    assert "is not the ceiling" in text


def test_lua_profile_tells_a_script_own_time_from_its_commands() -> None:
    phases = {
        "begin": {"n": 4, "cpu_us": 400.0, "commands": {"fcall": [4, 200.0], "hmget": [8, 40.0]}},
        "idle": {"n": 0, "cpu_us": 0.0, "commands": {}},
    }
    (name, s), *_ = luaprofile.summary(phases).items()
    assert name == "begin"
    assert (s["fcall_us"], s["commands_us"], s["lua_us"], s["cpu_us"]) == (50, 10, 40, 100)
    assert s["inside"] == {"hmget": {"calls": 2, "usec_per_call": 5}}


def test_isolation_latencies_count_only_the_deliveries_that_arrived_from_their_own_emit() -> None:
    emitted = {f"d{i}": 100.0 + i / 100 for i in range(100)}
    arrived = {f"d{i}": 100.0 + i / 100 + (i + 1) / 1000 for i in range(99)}  # d99 missing
    arrived["elsewhere"] = 500.0  # another endpoint's delivery: not counted
    s = isolation.summary(emitted, arrived)
    assert (s["emitted"], s["arrived"]) == (100, 99)
    assert s["p50_ms"] == pytest.approx(50)
    assert s["max_ms"] == pytest.approx(99)
    assert s["last_arrival_s"] == pytest.approx(0.98 + 0.099)


def test_isolation_slots_over_time_are_runs_of_one_state() -> None:
    def at(t: float, slots: int, limit: float | None, opened: bool = False) -> dict[str, object]:
        return {"t": t, "slots": slots, "limit": limit, "circuit_open": opened}

    series = [at(0.1, 2, None), at(0.6, 2, None), at(15.1, 1, 1.0), at(15.6, 0, 1.0, True)]
    assert isolation.runs(series) == (
        "0.1-0.6 s: 2 (limit 2), 15.1-15.1 s: 1 (limit 1), 15.6-15.6 s: 0 (limit 1, circuit open)"
    )


def test_bench_receiver_keeps_arrivals_by_delivery_id_and_never_answers_a_hanging_path(
    repo_root: Path,
) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.receiver", str(port)], cwd=repo_root)
    try:
        wait_until(lambda: get(port, "/_stats") is not None, what="the bench receiver")
        post = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        post.request("POST", "/lat/a", body=b"{}", headers={"webhook-id": "msg_1"})
        assert post.getresponse().status == 200
        assert set(get(port, "/_arrivals?path=/lat/a") or {}) == {"msg_1"}
        assert get(port, "/_arrivals?path=/lat/b") == {}
        hang = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        hang.request("POST", "/hang", body=b"{}")
        with pytest.raises(TimeoutError):
            hang.getresponse()
        wait_until(lambda: (get(port, "/_stats") or {}).get("hung"), what="the hanging request")
        assert get(port, "/_stats") == {
            "count": 1,
            "first": ANY,
            "last": ANY,
            "failed": 0,
            "hung": 1,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def get(port: int, path: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except OSError:
        return None


def test_the_sr_floor_prices_each_of_its_calls_at_one_round_trip_of_the_naive_task() -> None:
    from bench.report import floor_lines

    systems = {
        "N": {"cpu_us": 140.0, "enqueue": {"cpu_us": 28.0}},
        "SR": {"whole": {"by_command": {"fcall": {"calls": 3.0}, "hmget": {"calls": 7.0}}}},
    }
    (line,) = floor_lines(systems)
    assert "3.00 calls per delivery" in line
    assert "84 µs = 0.60x N" in line  # 3 x 28 / 140
    assert "allows 2.5 round trips" in line  # 0.5 x 140 / 28
    assert floor_lines({"N": systems["N"]}) == []
