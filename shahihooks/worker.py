"""What runs in a worker only: the startup check, the mover, task events in batches, the
renewal of the messages it holds.

The app (app.py) names these steps; a worker loads this module as it builds its
blueprint, so `import shahihooks` (and `emit`) loads none of it.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from typing import Any

from celery import bootsteps

from shahihooks import shards
from shahihooks.app import app, publisher
from shahihooks.broker import RenewalStreak
from shahihooks.celeryconf import check_celery_config, redis_servers
from shahihooks.connections import (
    OUTAGES,
    ServerFacts,
    cluster_primaries,
    node_address,
    redis_client,
    refuse_cluster,
    refuse_eviction,
    server_facts,
    server_warnings,
)
from shahihooks.contract import load_library
from shahihooks.endpoints import is_action, stored_endpoints
from shahihooks.errors import ConfigurationError, ShahihooksError
from shahihooks.mover import Mover
from shahihooks.safety import redact_url
from shahihooks.schema import check_state
from shahihooks.settings import Settings, current
from shahihooks.timings import restore_interval_s

logger = logging.getLogger("shahihooks.worker")


def check_worker(settings: Settings) -> None:
    """Refuse to run a worker that would lose deliveries or could not sign them; warn about
    what a restart of its Redis would lose.

    Its Celery settings (celeryconf.py); its Redis (never a Cluster, never evicting any key;
    append-only persistence and a clock in step with this machine's advised); the state's
    schema (never one written by an incompatible version); and its secrets: with no
    SHAHIHOOKS_SECRET, every endpoint in the store and every URL a live delivery waits for
    needs a secret of its own, or each of those deliveries would fail on the whole retry
    schedule.
    """
    check_celery_config(app.conf, settings)
    if not settings.secret:
        _check_secrets(settings)
    for what, url in redis_servers(settings, publisher.broker_url):
        cluster = settings.redis_cluster and url == settings.redis_url
        try:
            if not cluster:
                _check_server(server_facts(redis_client(url, settings.sentinel_master)), what, url)
                continue
            for client in cluster_primaries(url):  # each primary, its functions loaded
                where = f"{what} primary {node_address(client)}"
                _check_server(server_facts(client), where, url, cluster=True)
                load_library(client)
        except OUTAGES as exc:  # the worker waits for it like for the broker
            logger.warning("could not check the %s yet (%s: %s)", what, type(exc).__name__, exc)
    try:
        for state in shards.shards(settings):  # written by another version?
            check_state(state.client, state.keys)
    except OUTAGES as exc:
        logger.warning("could not check the state's schema yet (%s: %s)", type(exc).__name__, exc)


def _check_server(facts: ServerFacts, what: str, url: str, cluster: bool = False) -> None:
    refuse_cluster(facts, what, url, allowed=cluster)
    refuse_eviction(facts, what, url)
    for warning in server_warnings(facts, what, url):
        logger.warning("%s", warning)


def _check_secrets(settings: Settings) -> None:
    try:
        states = shards.shards(settings)
        first = states[0]  # the endpoint store is in every shard
        stored = {e.url: e for e in stored_endpoints(first.client, settings, first.keys)}
        needed = {u for u, e in stored.items() if e.enabled}
        for state in states:
            needed |= state.live_urls()
    except OUTAGES:
        return  # Redis is away: the worker waits for it, and checks nothing it cannot read
    unsigned = sorted(
        redact_url(u)
        for u in needed
        if not is_action(u) and not (u in stored and stored[u].secrets)
    )
    if unsigned:
        more = f" and {len(unsigned) - 1} more" if len(unsigned) > 1 else ""
        raise ConfigurationError(
            f"no secret: SHAHIHOOKS_SECRET is not set for this worker, and {unsigned[0]}"
            f"{more} has deliveries or an endpoint with no secret of its own. Give the "
            "worker the configuration the app emits with (Django: DJANGO_SETTINGS_MODULE or "
            "`python manage.py shahihooks worker`; Flask: `flask shahihooks worker`)"
        )


# Celery 5.x warns, with a 5-line block on every lost broker connection, that version 6
# will cancel running acks_late tasks by default. shahihooks does not rely on either
# behaviour (an attempt holds its delivery by a lease in Redis), so the notice is noise in
# an outage's log; every other deprecation warning still shows.
_CANCEL_NOTICE = r"\s*In Celery 5\.1 we introduced an optional breaking change"


def quiet_known_warnings() -> None:
    """Drop the notice above; after Celery's logging set-up, which turns its warnings on."""
    from celery.exceptions import CPendingDeprecationWarning

    warnings.filterwarnings("ignore", _CANCEL_NOTICE, CPendingDeprecationWarning)


class CheckStep(bootsteps.StartStopStep):
    """Runs `check_worker` as the worker starts, before it takes any message.

    A bootstep, not a `worker_init` receiver: Celery logs a signal receiver's exception and
    starts the worker anyway.
    """

    def start(self, parent: Any) -> None:
        quiet_known_warnings()
        try:
            check_worker(current())
        except ShahihooksError as exc:
            logger.critical("refusing to start: %s", exc)
            raise SystemExit(1) from None


class MoverStep(bootsteps.StartStopStep):
    """The mover runs in every worker: started with it, stopped with it."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.stop_mover: threading.Event | None = None

    def start(self, parent: Any) -> None:
        self.stop_mover = Mover(publisher, current).start()

    def stop(self, parent: Any) -> None:
        if self.stop_mover is not None:
            self.stop_mover.set()


class _TimerStep(bootsteps.StartStopStep):
    """A consumer step that runs one call on the event loop's timer while it is started."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer: Any = None

    def repeat(self, parent: Any, every_s: float, call: Any) -> None:
        self.stop(parent)
        self.timer = parent.hub.call_repeatedly(every_s, call)

    def stop(self, parent: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)


class HeldMessages(_TimerStep):
    """With a Redis broker, the messages this worker holds (two per execution slot: one
    running, one waiting for it) are renewed every restore interval (`QoS.renew_held`): a
    message waiting in a live worker's buffer is never given back to the queue, and one a
    killed worker held is, a visibility timeout after its last renewal. Started with the
    task consumer, again whenever it restarts (a new connection)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.streak = RenewalStreak()  # failed renewals, told once however long they last

    def start(self, parent: Any) -> None:
        qos = getattr(getattr(parent.task_consumer, "channel", None), "qos", None)
        renew = getattr(qos, "renew_held", None)
        if parent.hub is None or renew is None:
            return  # not kombu's Redis transport (RabbitMQ holds them itself), or no loop
        self.repeat(parent, restore_interval_s(current()), functools.partial(renew, self.streak))


EVENTS_FLUSH_S = 0.1  # task events for Flower reach it within this, in batches
EVENTS_BUFFER_LIMIT = 500  # or sooner, once this many wait


class EventBatches(_TimerStep):
    """Task events (`-E`, for Flower) leave the worker in batches, every EVENTS_FLUSH_S.

    Celery buffers a worker's task events already, but flushes the buffer on the event
    loop's next turn: about one publish (a Redis round trip, and kombu's whole publishing
    path) per delivery, under load, on the loop that takes messages — measured at about a
    third of the throughput. Here the loop flushes on a timer instead; a batch is one
    message (Flower reads lists of events), and the events keep the times they were made at.
    Started after Celery's events step, again whenever it restarts (a new connection)."""

    requires = ("celery.worker.consumer.events:Events",)

    def start(self, parent: Any) -> None:
        dispatcher = parent.event_dispatcher
        if parent.hub is None or dispatcher is None or not dispatcher.enabled:
            return  # no events, or no event loop (Celery then sends each at once)
        dispatcher.on_send_buffered = None  # not on the loop's next turn: on the timer
        dispatcher.buffer_limit = EVENTS_BUFFER_LIMIT
        # Celery's events step flushes what is left as it stops
        self.repeat(parent, EVENTS_FLUSH_S, parent._flush_events)
