"""A state Redis that can hurt deliveries: one that evicts keys, one restarted without
persistence, one at its memory limit, one whose clock differs from this machine's.

Each against a private redis-server (tests/faults.py `World`), with real worker, emitter,
`doctor` and `stats` processes; the pure rules (which policy is refused, which clock is off)
as pure functions over ServerFacts.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid

import pytest

from shahihooks.connections import (
    ServerFacts,
    clock_warning,
    eviction_warning,
    memory_text,
    refuse_eviction,
)
from shahihooks.errors import ConfigurationError
from shahihooks.settings import Settings
from shahihooks.worker import check_worker
from tests.conftest import wait_until
from tests.faults import ROOT, World, rows_of
from tests.receiver import Receiver

URL = "redis://127.0.0.1:6390/0"


def facts(**kw: object) -> ServerFacts:
    return ServerFacts(cluster=False, appendonly=True, **kw)  # type: ignore[arg-type]


def settings_of(world: World) -> Settings:
    return Settings.from_env({k: v for k, v in world.env().items() if k.startswith("SHAHIHOOKS_")})


def cli(
    world: World, *args: str, wrap: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*wrap, sys.executable, "-m", "shahihooks", *args],
        env={**world.env(), **(env or {})},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def worker_log(world: World) -> str:
    with open(os.path.join(world.folder, "workers.log"), encoding="utf-8", errors="replace") as f:
        return f.read()


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_an_allkeys_policy_is_refused(policy: str) -> None:
    with pytest.raises(ConfigurationError, match=f"maxmemory-policy {policy}.*noeviction"):
        refuse_eviction(facts(maxmemory_policy=policy), "state Redis", URL)


@pytest.mark.parametrize("policy", ["noeviction", "volatile-lru", ""])
def test_other_policies_are_not_refused(policy: str) -> None:
    refuse_eviction(facts(maxmemory_policy=policy), "state Redis", URL)


def test_a_volatile_policy_is_warned_about_naming_what_it_can_delete() -> None:
    warning = eviction_warning(facts(maxmemory_policy="volatile-ttl"), "state Redis", URL)
    assert warning is not None
    for named in ("volatile-ttl", "delivered/dead markers", "emit(key=...)", "throttles"):
        assert named in warning
    assert eviction_warning(facts(maxmemory_policy="noeviction"), "state Redis", URL) is None


def test_a_clock_off_by_more_than_30_s_is_warned_about() -> None:
    assert clock_warning(facts(clock_ahead_s=29.0), "state Redis", URL) is None
    assert clock_warning(facts(clock_ahead_s=-29.0), "state Redis", URL) is None
    ahead = clock_warning(facts(clock_ahead_s=600.4), "state Redis", URL)
    assert ahead is not None
    assert "600 s ahead of" in ahead
    assert "webhook-timestamp" in ahead
    behind = clock_warning(facts(clock_ahead_s=-45.0), "state Redis", URL)
    assert behind is not None
    assert "45 s behind" in behind


def test_memory_text_shows_the_headroom() -> None:
    assert memory_text(facts(used_memory=50_000_000, maxmemory=100_000_000)) == (
        "50.0 MB of 100.0 MB (50%)"
    )
    assert memory_text(facts(used_memory=2_000_000)) == "2.0 MB (no maxmemory limit)"


def test_worker_and_doctor_refuse_a_redis_that_evicts_any_key(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    client = world.client
    client.config_set("maxmemory", "200mb")
    client.config_set("maxmemory-policy", "allkeys-lru")
    with pytest.raises(ConfigurationError, match="allkeys-lru"):
        check_worker(settings_of(world))
    proc = world.worker()
    assert proc.wait(timeout=60) != 0, "the worker must refuse to start"
    assert "maxmemory-policy allkeys-lru" in worker_log(world)
    doctor = cli(world, "doctor", "--no-worker-check")
    assert doctor.returncode == 1
    assert "✗ state Redis redis://127.0.0.1" in doctor.stdout
    assert "maxmemory-policy allkeys-lru" in doctor.stdout

    client.config_set("maxmemory-policy", "volatile-lru")
    with caplog.at_level(logging.WARNING, logger="shahihooks.worker"):
        check_worker(settings_of(world))
    assert any("volatile-lru" in r.getMessage() for r in caplog.records)
    doctor = cli(world, "doctor", "--no-worker-check", "--json")
    lines = {c["what"]: c["ok"] for c in json.loads(doctor.stdout)}
    (evicting,) = [w for w in lines if "volatile-lru" in w]
    assert lines[evicting] is False
    assert "delivered/dead markers" in evicting

    client.config_set("maxmemory-policy", "noeviction")
    doctor = cli(world, "doctor", "--no-worker-check")
    assert "✓ state Redis evicts nothing (noeviction)" in doctor.stdout


def test_a_restart_without_persistence_is_reported_by_the_worker_doctor_and_stats(
    world: World, receiver: Receiver
) -> None:
    world.stop_redis()
    world.redis_args = ["--appendonly", "no"]
    world.start_redis()
    path = f"/lost-{uuid.uuid4().hex[:6]}"
    world.settings["SHAHIHOOKS_RETRY_SCHEDULE"] = "60"
    receiver.rule(path, lambda n: 500)
    world.worker()
    world.emit(3, path)
    world.wait_retrying(3)  # three deliveries wait in Redis, and only there
    assert world.client.exists(world.keys.epoch), "the first worker sets the marker"
    assert "✓ no loss of the state recorded" in cli(world, "doctor", "--no-worker-check").stdout

    world.stop_redis()
    world.start_redis()  # empty: no AOF, no RDB
    wait_until(
        lambda: "the state in Redis was lost" in worker_log(world),
        timeout=60,
        what="the worker reports the loss",
    )
    assert "ERROR" in worker_log(world)
    assert "restarted without persistence" in worker_log(world)
    doctor = cli(world, "doctor", "--no-worker-check")
    assert doctor.returncode == 1
    assert "✗ the state in Redis was lost" in doctor.stdout
    assert "queued or waiting" in doctor.stdout
    stats = cli(world, "stats", "--json")
    assert stats.returncode == 0
    assert "the state in Redis was lost" in stats.stderr
    assert isinstance(json.loads(stats.stdout), list), "--json stays exact"

    acked = cli(world, "doctor", "--no-worker-check", "--ack-lost")
    assert "✓ no loss of the state recorded" in acked.stdout
    assert "was lost" not in cli(world, "stats").stderr


def test_a_full_redis_is_ridden_out_and_emit_says_redis_is_full(
    world: World, receiver: Receiver
) -> None:
    client = world.client
    client.config_set("maxmemory-policy", "noeviction")
    world.settings["SHAHIHOOKS_TIMEOUT"] = "5"  # a message stuck unacknowledged: back in 35 s
    path = f"/full-{uuid.uuid4().hex[:6]}"
    receiver.rule(path, lambda n: (time.sleep(0.3), 200)[1])
    ids = world.emit(30, path)
    first = world.worker(2)
    wait_until(lambda: len(receiver.requests_to(path)) >= 4, timeout=60, what="deliveries")
    # full now, and still full when the running worker frees what its deliveries held (at
    # exactly the memory used, a finished delivery's freed bytes let the next emit in)
    client.config_set("maxmemory", str(client.info("memory")["used_memory"] // 2))

    rows = rows_of(world.emitter(2, path), timeout=60)
    assert [(r["error"], r["shahihooks"]) for r in rows] == [("RedisFull", True)] * 2
    assert rows[0]["message"].startswith("Redis is full: redis://127.0.0.1")
    to = {"SHAHIHOOKS_URLS": receiver.url(path)}
    emitted = cli(world, "emit", "ticket.created", "--data", '{"ticket_id": 1}', env=to)
    assert emitted.returncode == 1
    assert "Traceback" not in emitted.stderr
    assert emitted.stderr.strip().splitlines()[-1].startswith("Error: Redis is full: ")
    doctor = cli(world, "doctor", "--no-worker-check")
    assert "✗ state Redis memory: " in doctor.stdout
    assert "nearly full" in doctor.stdout

    second = world.worker(2)  # a worker started while Redis is full stays up
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert first.poll() is None, "a running worker must ride out a full Redis"
        assert second.poll() is None, "a worker started on a full Redis must wait, not exit"
        time.sleep(0.5)

    client.config_set("maxmemory", "0")
    ledger = world.wait_ledger(ids, path, timeout=120)
    print(f"\nRedis full for 15 s mid-run: {ledger}")
    assert ledger.missing == []
    assert ledger.received_distinct == 30
    assert first.poll() is None
    assert second.poll() is None
    assert "Unrecoverable error" not in worker_log(world)


def test_doctor_on_a_machine_whose_clock_is_ten_minutes_ahead_warns(world: World) -> None:
    skewed = cli(world, "doctor", "--no-worker-check", wrap=("faketime", "-f", "+600s"))
    assert "✗ this machine's clock is 600 s ahead of the clock of state Redis" in skewed.stdout
    assert skewed.returncode == 1
    right = cli(world, "doctor", "--no-worker-check")
    assert "✓ clock within 30 s of the state Redis's" in right.stdout
