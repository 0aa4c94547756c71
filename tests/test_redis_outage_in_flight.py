"""A short Redis outage while attempts are in flight sends nothing twice: an attempt that
ends while Redis is away keeps its outcome and records it once Redis is back (within its
lease), instead of being requeued and sent again after the lease."""

from __future__ import annotations

import os
import signal
import time
import uuid

import redis

import shahihooks
from shahihooks.keys import Keys
from shahihooks.state import Finished, MessageRef, Outcome, Verdict, state_for
from tests.conftest import wait_until
from tests.faults import World
from tests.receiver import Receiver

IN_FLIGHT_S = 1.5  # each attempt takes this long at the receiver
OUTAGE_S = 3.0


def slow_ok(n: int) -> int:
    time.sleep(IN_FLIGHT_S)
    return 200


def test_a_3_s_redis_restart_mid_attempt_delivers_each_once(
    world: World, receiver: Receiver
) -> None:
    path = f"/outage-{uuid.uuid4().hex[:6]}"
    receiver.rule(path, slow_ok)
    ids = world.emit(24, path)
    worker = world.worker(concurrency=8)
    wait_until(lambda: len(receiver.requests_to(path)) >= 4, timeout=60, what="attempts")
    world.stop_redis()  # the attempts in flight end while Redis is away
    time.sleep(OUTAGE_S)
    world.start_redis()
    ledger = world.wait_ledger(ids, path, timeout=120)
    assert worker.poll() is None, "the worker must survive the outage"
    print(f"\nRedis away {OUTAGE_S} s with attempts in flight: {ledger}")
    assert ledger.missing == []
    assert ledger.duplicates == 0, ledger


def test_a_redis_paused_longer_than_the_socket_timeout_mid_attempt_delivers_each_once(
    world: World, receiver: Receiver
) -> None:
    """SIGSTOP: commands time out (a step that may have run), unlike a refused connection."""
    path = f"/paused-{uuid.uuid4().hex[:6]}"
    receiver.rule(path, slow_ok)
    ids = world.emit(24, path)
    worker = world.worker(concurrency=8)
    wait_until(lambda: len(receiver.requests_to(path)) >= 4, timeout=60, what="attempts")
    assert world.redis_proc is not None
    os.kill(world.redis_proc.pid, signal.SIGSTOP)
    try:
        time.sleep(6.0)  # past the clients' 4 s socket timeout
    finally:
        os.kill(world.redis_proc.pid, signal.SIGCONT)
    ledger = world.wait_ledger(ids, path, timeout=120)
    assert worker.poll() is None, "the worker must survive the pause"
    print(f"\nRedis paused 6 s with attempts in flight: {ledger}")
    assert ledger.missing == []
    assert ledger.duplicates == 0, ledger


def test_finish_tried_again_after_it_ran_logs_and_counts_once(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    """The step's answer was lost (a timeout after it ran): its second try changes nothing."""
    s = settings(urls=(receiver.url("/again"),), queue=f"nobody-{uuid.uuid4().hex[:6]}")
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 1})
    state = state_for(s)
    ref = MessageRef(delivery.id, 1)
    assert state.begin(ref).verdict is Verdict.GO
    done = Outcome(Finished.DELIVERED, stats_prefix="u e ", bucket="le10", log={"id": delivery.id})
    assert state.finish(ref, done)[:2] == (Finished.DELIVERED, False)
    assert state.finish(ref, done, again=True)[:2] == (Finished.DELIVERED, False)
    keys = Keys(s.prefix)
    # its own entries (an earlier test's attempts still in flight may log after it)
    mine = [e for _, e in redis_client.xrange(keys.log) if e.get(b"id") == delivery.id.encode()]
    assert len(mine) == 1
    assert redis_client.hget(keys.totals, "u e le10") == b"1"  # an attempt counts in its bucket
    assert redis_client.hget(keys.totals, "u e n") == b"1"  # and in the count earlier readers use
    # without `again`, a late try is an attempt that lost its delivery: logged as such
    assert state.finish(ref, done)[0] is Finished.STALE
