"""Nothing is lost under faults: killed workers, stopped workers, a restarted Redis, lost
messages — with the default timings that recovery depends on (timeout, lease, visibility).

Real processes throughout: a private redis-server (append-only), workers and emitters as
subprocesses, the HTTPS receiver. Every test ends with the ledger: each delivery id that
emit returned is delivered or dead-lettered, and the receiver saw each delivered id.
"""

from __future__ import annotations

import signal
import time
import uuid

from shahihooks.settings import Settings
from shahihooks.timings import grace_s, lease_s, visibility_timeout_s
from tests.conftest import wait_until
from tests.faults import World, halt, kill_mid_run, rows_of
from tests.receiver import Receiver

# With the default settings, a killed worker's deliveries are all sent again within this.
RECOVERY_BOUND_S = 120


def settings_of(world: World) -> Settings:
    return Settings.from_env({k: v for k, v in world.env().items() if k.startswith("SHAHIHOOKS_")})


def test_the_recovery_timings_follow_from_the_default_timeout() -> None:
    defaults = Settings()
    assert (lease_s(defaults), visibility_timeout_s(defaults)) == (25, 45)
    # a lost message is looked at a grace period after it was published; the queue has moved
    # past it by then (a few seconds at most), and it is published again a grace later
    assert grace_s(defaults) + 15 < RECOVERY_BOUND_S


def test_worker_killed_mid_run_is_recovered_within_two_minutes_with_default_settings(
    world: World, receiver: Receiver
) -> None:
    path = f"/kill-{uuid.uuid4().hex[:6]}"
    receiver.rule(path, lambda n: (time.sleep(0.005), 200)[1])
    ids = world.emit(1000, path)
    at_kill = kill_mid_run(world, receiver, path, after=200)
    killed_at = time.monotonic()
    assert 0 < at_kill < 1000, "the kill must land mid-run"
    world.worker(processes=2)  # two movers, two consumers: still each delivery once
    ledger = world.wait_ledger(ids, path, timeout=RECOVERY_BOUND_S)
    recovered_s = time.monotonic() - killed_at
    print(f"\nSIGKILL at {at_kill}/1000: {ledger}; all done {recovered_s:.1f} s after the kill")
    assert ledger.missing == []
    assert ledger.delivered == 1000
    assert ledger.received_distinct == ledger.delivered
    assert ledger.duplicates <= 8, "at most the killed worker's in-flight deliveries"
    assert recovered_s <= RECOVERY_BOUND_S


def test_sigterm_leaves_waiting_retries_in_redis_and_a_new_worker_sends_them(
    world: World, receiver: Receiver
) -> None:
    path = f"/held-{uuid.uuid4().hex[:6]}"
    # 500s halve the endpoint's limit to 1 attempt in flight: the 50 first attempts go one
    # after another (~1.1 s in all, measured) and all must have failed before the first one's
    # retry is due; 25 s is over 20 times that, for a loaded CI machine, and is waited out once
    world.settings["SHAHIHOOKS_RETRY_SCHEDULE"] = "25"
    # every first attempt fails and waits for its retry: no circuit holds them back here
    world.settings["SHAHIHOOKS_CIRCUIT_THRESHOLD"] = "1000"
    receiver.rule(path, lambda n: 500 if n <= 50 else 200)
    ids = world.emit(50, path)
    first = world.worker()
    world.wait_retrying(50)
    client = world.client
    started = time.monotonic()
    halt(first, signal.SIGTERM)
    assert time.monotonic() - started < 10, "nothing held: a stopping worker has no wait to finish"
    assert client.llen("faults") == 0
    assert client.hlen("unacked") == 0, "no message is held while a retry waits"
    assert client.zcard(world.keys.schedule) == 50
    world.worker()
    ledger = world.wait_ledger(ids, path, timeout=90)
    print(f"\nSIGTERM with 50 waiting retries: {ledger}")
    assert ledger.missing == []
    assert ledger.delivered == 50
    assert ledger.received_distinct == 50


def test_waiting_retries_survive_a_redis_restart_with_aof(world: World, receiver: Receiver) -> None:
    path = f"/aof-{uuid.uuid4().hex[:6]}"
    # as above: at 1 attempt in flight, all 30 first attempts must have failed (and Redis
    # restarted) before the first retry is due; 25 s is over 20 times what they take
    world.settings["SHAHIHOOKS_RETRY_SCHEDULE"] = "25"
    # every first attempt fails and waits for its retry: no circuit holds them back here
    world.settings["SHAHIHOOKS_CIRCUIT_THRESHOLD"] = "1000"
    receiver.rule(path, lambda n: 500 if n <= 30 else 200)
    ids = world.emit(30, path)
    worker = world.worker()
    world.wait_retrying(30)
    world.stop_redis()
    world.start_redis()
    assert world.client.zcard(world.keys.schedule) == 30, "the schedule is on disk"
    ledger = world.wait_ledger(ids, path, timeout=90)
    assert worker.poll() is None, "the worker must survive a Redis restart"
    print(f"\nRedis restarted with 30 waiting retries: {ledger}")
    assert ledger.missing == []
    assert ledger.received_distinct == 30


def test_redis_restart_mid_run_no_hang_clear_errors_nothing_acknowledged_lost(
    world: World, receiver: Receiver
) -> None:
    path = f"/restart-{uuid.uuid4().hex[:6]}"
    worker = world.worker()
    emitter = world.emitter(300, path, pause_s=0.02)
    # Redis stops once emits are flowing (its emit counter: 10 of 300 stored), however long
    # the emitter took to start on a loaded machine; the rest (~6 s of them) meet the restart
    client = world.client
    wait_until(lambda: int(client.get(world.keys.seq) or 0) >= 10, timeout=60, what="10 emits")
    world.stop_redis()
    time.sleep(1.5)
    world.start_redis()
    rows = rows_of(emitter)
    assert len(rows) == 300
    failures = [r for r in rows if "error" in r]
    acknowledged = [r["ok"] for r in rows if "ok" in r]
    assert max(r["s"] for r in rows) < 15, "an emit must fail fast, never hang"
    assert all(r["shahihooks"] for r in failures), failures[:3]
    refused = [r for r in failures if r["error"] == "UnavailableError"]
    # the one emit whose step was sent as Redis stopped, if any, may have run: it says so
    unknown = [r for r in failures if r["error"] == "OutcomeUnknown"]
    assert len(refused) + len(unknown) == len(failures), failures[:3]
    assert len(unknown) <= 1, unknown
    assert all("nothing was enqueued" in r["message"] for r in refused)
    assert all("may or may not have been enqueued" in r["message"] for r in unknown)
    assert refused, "the restart must land mid-run"
    ledger = world.wait_ledger(acknowledged, path, timeout=RECOVERY_BOUND_S)
    assert worker.poll() is None, "the worker must survive a Redis restart"
    print(f"\nRedis restarted: {len(refused)} emits refused, {len(unknown)} unknown; {ledger}")
    assert ledger.missing == []
    assert ledger.received_distinct == ledger.delivered


def test_worker_processes_option_runs_and_stops_that_many_workers(world: World) -> None:
    from celery import Celery

    proc = world.worker(concurrency=4, processes=2)
    probe = Celery("probe", broker=world.url)
    deadline = time.monotonic() + 30
    replies: list[object] = []
    while len(replies) < 2 and time.monotonic() < deadline:
        replies = probe.control.ping(timeout=1.0) or []
    names = sorted(next(iter(r)) for r in replies)  # type: ignore[call-overload]
    assert [n.split("@")[0].split(".")[0] for n in names] == ["shahihooks1", "shahihooks2"]
    assert len({n.split("@")[0].split(".")[1] for n in names}) == 1, "one supervisor's tag"
    halt(proc, signal.SIGTERM)
    assert proc.returncode == 0
    assert probe.control.ping(timeout=1.0) == []
    # a supervisor killed outright takes its workers with it (none left running unseen)
    proc = world.worker(concurrency=4, processes=2)
    while len(probe.control.ping(timeout=1.0) or []) < 2 and time.monotonic() < deadline + 30:
        pass
    halt(proc, signal.SIGKILL)
    wait_until(lambda: probe.control.ping(timeout=1.0) == [], timeout=30, what="workers gone")


def test_lost_messages_are_published_again_within_two_minutes(
    world: World, receiver: Receiver
) -> None:
    path = f"/lost-{uuid.uuid4().hex[:6]}"
    ids = world.emit(5, path)
    world.client.delete("faults")  # the messages are gone; the deliveries are not
    lost_at = time.monotonic()
    world.worker()
    ledger = world.wait_ledger(ids, path, timeout=RECOVERY_BOUND_S)
    took = time.monotonic() - lost_at
    print(f"\nlost messages: {ledger}, sent again {took:.0f} s after the loss")
    assert ledger.missing == []
    assert ledger.delivered == 5
    assert ledger.received_distinct == 5
    assert took <= RECOVERY_BOUND_S
