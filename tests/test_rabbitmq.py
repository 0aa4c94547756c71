"""RabbitMQ as the broker (the state stays in Redis): end to end, retries, dead letters and
replay, a worker outage, SIGKILL and SIGTERM — a real RabbitMQ on 127.0.0.1:5672, real
worker processes, the ledger after each."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection

from shahihooks import dead
from shahihooks.settings import Settings
from tests.conftest import wait_until
from tests.faults import World, halt, kill_mid_run
from tests.receiver import Receiver

AMQP = "amqp://guest:guest@127.0.0.1:5672//"


def queue_depth(name: str) -> int:
    with Connection(AMQP) as conn:
        return int(conn.default_channel.queue_declare(name, passive=True).message_count)


@pytest.fixture(scope="module")
def rabbitmq() -> str:
    try:
        with Connection(AMQP, connect_timeout=5) as conn:
            conn.connect()
    except Exception as exc:
        pytest.fail(f"RabbitMQ does not answer at {AMQP} ({exc}): `make rabbitmq` starts it")
    return AMQP


@pytest.fixture
def world(rabbitmq: str, receiver: Receiver, ca: tuple[object, str]) -> Iterator[World]:
    w = World(receiver, ca[1])
    queue = f"shtest-amqp-{uuid.uuid4().hex[:8]}"
    w.settings.update({"SHAHIHOOKS_BROKER_URL": rabbitmq, "SHAHIHOOKS_QUEUE": queue})
    w.start_redis()
    try:
        yield w
    finally:
        w.close()
        with Connection(rabbitmq) as conn:
            conn.default_channel.queue_delete(queue)


def test_rabbitmq_end_to_end_with_retries_dead_letters_and_replay(
    world: World, receiver: Receiver
) -> None:
    path = f"/amqp-{uuid.uuid4().hex[:6]}"
    receiver.rule(path, lambda n: 500 if n <= 10 else 200)  # the first ten attempts fail
    # ten failures in a row would open the endpoint's circuit (tested in test_endpoint_health)
    world.settings["SHAHIHOOKS_CIRCUIT_THRESHOLD"] = "1000"
    world.worker()
    ids = world.emit(20, path)
    ledger = world.wait_ledger(ids, path, timeout=60)
    assert ledger.missing == []
    assert ledger.delivered == 20
    assert ledger.received_distinct == 20
    # a delivery that fails every attempt is dead-lettered, and replays through RabbitMQ
    down = f"/amqp-down-{uuid.uuid4().hex[:6]}"
    receiver.rule(down, lambda n: 500 if n <= 4 else 200)
    (gone,) = world.emit(1, down)
    assert world.wait_ledger([gone], down, timeout=30).dead == 1
    settings = Settings.from_env({k: v for k, v in world.env().items() if k.startswith("SHAHI")})
    assert dead.replay(gone, settings)
    again = world.wait_ledger([gone], down, timeout=30)
    assert (again.delivered, again.received_distinct) == (1, 1)


def test_rabbitmq_worker_outage_then_sigkill_loses_nothing_and_doubles_no_message(
    world: World, receiver: Receiver
) -> None:
    path = f"/amqp-kill-{uuid.uuid4().hex[:6]}"
    receiver.rule(path, lambda n: (time.sleep(0.01), 200)[1])
    ids = world.emit(300, path)
    queue = world.settings["SHAHIHOOKS_QUEUE"]
    # no worker for a while, past two checks for lost messages: nothing is published again
    # (the queue has not moved, so none of them can have been lost)
    time.sleep(35)
    assert queue_depth(queue) == 300
    at_kill = kill_mid_run(world, receiver, path, after=80)
    assert 0 < at_kill < 300, "the kill must land mid-run"
    world.worker(processes=2)
    ledger = world.wait_ledger(ids, path, timeout=120)
    print(f"\nRabbitMQ, SIGKILL at {at_kill}/300: {ledger}")
    assert ledger.missing == []
    assert ledger.delivered == 300
    assert ledger.received_distinct == 300
    assert ledger.duplicates <= 8, "at most the killed worker's in-flight deliveries"


def test_rabbitmq_sigterm_leaves_waiting_retries_in_redis(world: World, receiver: Receiver) -> None:
    path = f"/amqp-term-{uuid.uuid4().hex[:6]}"
    # 500s halve the endpoint's limit to 1 attempt in flight: the 20 first attempts go one
    # after another, and all must have failed before the first one's retry is due
    world.settings["SHAHIHOOKS_RETRY_SCHEDULE"] = "20"
    world.settings["SHAHIHOOKS_CIRCUIT_THRESHOLD"] = "1000"  # all 20 wait for their retry
    receiver.rule(path, lambda n: 500 if n <= 20 else 200)
    ids = world.emit(20, path)
    first = world.worker()
    world.wait_retrying(20)
    halt(first, signal.SIGTERM)
    assert queue_depth(world.settings["SHAHIHOOKS_QUEUE"]) == 0
    assert world.client.zcard(world.keys.schedule) == 20
    world.worker()
    ledger = world.wait_ledger(ids, path, timeout=75)
    assert ledger.missing == []
    assert ledger.received_distinct == 20


def _run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


def close_connections_of(pid: int) -> int:
    """Close, on RabbitMQ's side, every connection of process `pid` (rabbitmqctl)."""
    listing = _run("ss", "-Htnp", "state", "established", "( dport = :5672 )")
    ports = {ln.split()[2].rsplit(":", 1)[1] for ln in listing.splitlines() if f"pid={pid}," in ln}
    rows = [
        ln.rsplit("\t", 1)
        for ln in _run("rabbitmqctl", "-q", "list_connections", "pid", "peer_port").splitlines()
    ]
    closed = [conn for conn, port in rows if port in ports]
    for conn in closed:
        _run("rabbitmqctl", "-q", "close_connection", conn, "closed by a test")
    return len(closed)


def test_rabbitmq_worker_keeps_delivering_after_its_connection_is_closed(
    world: World, receiver: Receiver
) -> None:
    """Celery's prefetch count reduction after a reconnect left a threads worker idle for
    minutes with messages in hand (until RabbitMQ's heartbeat dropped it): it is off."""
    path = f"/amqp-closed-{uuid.uuid4().hex[:6]}"
    receiver.rule(path, lambda n: (time.sleep(0.2), 200)[1])
    # at most 8 in flight (40 a second): deliveries are left to make after the three closes,
    # however fast this machine is that day (16 threads delivered 1,493 of 1,500 before)
    world.settings["SHAHIHOOKS_ENDPOINT_CONCURRENCY"] = "8"
    ids = world.emit(1500, path)
    worker = world.worker(16)
    wait_until(lambda: len(receiver.requests_to(path)) >= 100, timeout=60)
    for k in range(3):
        assert close_connections_of(worker.pid) >= 1
        closed_at = len(receiver.requests_to(path))
        assert closed_at + 50 < 1500, "deliveries must be left to make after the close"
        wait_until(
            lambda: len(receiver.requests_to(path)) >= closed_at + 50,  # noqa: B023
            timeout=30,
            what=f"deliveries going on after connection close {k + 1}",
        )
    ledger = world.wait_ledger(ids, path, timeout=120)
    print(f"\nRabbitMQ, the worker's connection closed 3 times: {ledger}")
    assert ledger.missing == []
    assert ledger.received_distinct == 1500
    assert worker.poll() is None
