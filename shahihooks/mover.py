"""The mover: publishes each waiting delivery's message when its time comes.

Every worker runs one, in a thread. Each step claims what is due in one Lua call (so two
movers never publish the same entry: claim.lua), per shard in a Redis Cluster (shards.py),
and publishes it; it sleeps until the next entry is due, at most `MAX_SLEEP_S`, so a due
retry leaves within about a second. Every `WATCH_S` it also looks at the queue: seen empty,
every message published before that moment has been taken by a worker, which is how a
message lost inside a killed worker is told from one still waiting its turn (the
watermark, claim.lua).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence

from shahihooks import ops, shards, signers
from shahihooks.connections import OUTAGES
from shahihooks.epoch import Epoch
from shahihooks.hooks import hooks
from shahihooks.publish import Message, Publisher
from shahihooks.settings import Settings
from shahihooks.state import Claimed, Due, State

logger = logging.getLogger("shahihooks.mover")

MAX_SLEEP_S = 0.5
MIN_SLEEP_S = 0.02
WATCH_S = 5.0
BUDGET = 500  # entries per claim: a long backlog of due work is moved in several steps
OUTAGE_MAX_WAIT_S = 10.0  # the longest wait between tries while Redis does not answer


def backoff(failures: int) -> float:
    """Seconds to wait after `failures` tries in a row met an outage: 1, 2, 4, 8, then 10."""
    return min(OUTAGE_MAX_WAIT_S, 2.0 ** (failures - 1))


def publish_due(publisher: Publisher, state: State, due: Sequence[Due]) -> None:
    """Publish the messages of `due` deliveries; those the broker did not take, the mover
    publishes again soon (`unpublished`)."""
    if not due:
        return
    messages = [Message(d.delivery_id, d.token, d.event, d.shown_url, d.attempt) for d in due]
    try:
        publisher.publish(messages)
    except Exception:
        state.unpublished([(m.delivery_id, m.token) for m in messages])
        raise


class Mover:
    def __init__(self, publisher: Publisher, settings: Callable[[], Settings]) -> None:
        self.publisher = publisher
        self.settings = settings
        self._watched = 0.0
        self._told = 0.0  # when a primary away was last said
        self._random = random.Random()  # its own: the global one belongs to the application
        # each shard's marker, looked at with the queue: was its state lost?
        self.epochs: dict[str, Epoch] = {}

    def step(self) -> float:
        """Publish what is due now, in every shard; return the seconds until more may be due."""
        settings = self.settings()
        waits = []
        ops_waiting = False
        outage: Exception | None = None
        for state in shards.shards(settings):
            try:
                claimed: Claimed = state.claim(BUDGET)
                publish_due(self.publisher, state, claimed.due)
            except OUTAGES as exc:  # a Cluster's primary away: the other shards still move
                outage = outage or exc
                continue
            ops_waiting = ops_waiting or bool(claimed.ops_waiting)
            waits.append(0.0 if len(claimed.due) >= BUDGET else claimed.next_in_s)
        if outage is not None and not waits:  # every shard away: an outage, backed off
            raise outage
        if outage is not None and time.monotonic() - self._told >= WATCH_S:
            self._told = time.monotonic()
            logger.warning(
                "a Redis Cluster primary is away (%s: %s): its shards wait, the others move",
                type(outage).__name__,
                outage,
            )
        if time.monotonic() - self._watched >= WATCH_S:
            self.watch_queue()
        if ops_waiting:
            try:
                ops.drain(settings, hooks)
            except Exception as exc:  # they stay in Redis: the next step tries again
                logger.warning("operational events not sent yet (%s: %s)", type(exc).__name__, exc)
        return min(waits)

    def watch_queue(self) -> None:
        settings = self.settings()
        states = shards.shards(settings)
        seen_at: list[tuple[State, int]] = []
        try:
            signers.register(settings)  # doctor tells an app no worker signs like it
        except OUTAGES:  # a Cluster's first primary away: said again next time
            if len(states) == 1:
                raise
        for state in states:
            try:
                self.epochs.setdefault(state.keys.prefix, Epoch()).check(state.client, state.keys)
                seen_at.append((state, state.now_ms()))
            except OUTAGES:  # a Cluster's primary away: its shards are watched next time
                if len(states) == 1:
                    raise
        if self.publisher.queue_size() == 0:
            for state, at in seen_at:
                state.queue_seen_empty(at)
        self._watched = time.monotonic()

    def run(self, stop: threading.Event) -> None:
        failures, down_since = 0, 0.0
        while not stop.is_set():
            try:
                wait = self.step()
            except OUTAGES as exc:
                # an outage: back off (1, 2, 4 … OUTAGE_MAX_WAIT_S) and say the wait it keeps
                failures, down_since = failures + 1, down_since or time.monotonic()
                wait = backoff(failures)
                logger.warning(
                    "mover: %s: %s (trying again in %.0f s)", type(exc).__name__, exc, wait
                )
                stop.wait(wait)
                continue
            except Exception:
                logger.exception("mover: a bug (trying again in 1 s)")
                stop.wait(1.0)
                continue
            if failures:
                logger.warning("mover: reconnected after %.0f s", time.monotonic() - down_since)
                failures, down_since = 0, 0.0
            # a little jitter keeps the movers of many workers from stepping in lockstep
            stop.wait(max(MIN_SLEEP_S, min(wait, MAX_SLEEP_S)) * self._random.uniform(0.8, 1.0))

    def start(self) -> threading.Event:
        """Run in a daemon thread; set the returned event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="shahihooks-mover")
        thread.daemon = True
        thread.start()
        return stop
