"""Celery settings for shahihooks, and the startup check of a worker's Celery settings.

The timeouts follow from the timings of one attempt (timings.py).
"""

from __future__ import annotations

from typing import Any

from kombu.serialization import registry  # type: ignore[attr-defined]

from shahihooks.errors import ConfigurationError
from shahihooks.settings import Settings
from shahihooks.timings import LEASE_MARGIN_S, lease_s, restore_interval_s, visibility_timeout_s

PREFETCH_MULTIPLIER = 2  # messages a worker takes per execution slot (see celery_config)
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "sentinel://")


def transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's Redis options: how soon a killed worker's messages are given back.

    kombu scans for messages older than the visibility timeout every interval × throttle
    seconds (100 s by default); shahihooks scans every tenth of the timeout (1 to 10 s).
    """
    return {
        "visibility_timeout": visibility_timeout_s(settings),
        "unacked_restore_interval": restore_interval_s(settings),
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 60,  # a worker killed mid-scan blocks scans this long
        "socket_connect_timeout": 5,
        "socket_timeout": 30,  # a broker that vanishes without closing: fail, don't hang
        "master_name": settings.sentinel_master,  # used with sentinel:// URLs only
    }


def is_redis(url: str) -> bool:
    return url.startswith(REDIS_SCHEMES)


def redis_servers(settings: Settings, broker_url: str) -> list[tuple[str, str]]:
    """The Redis servers deliveries rely on, each named: the state's, and the broker's when
    it is another Redis."""
    servers = [("state Redis", settings.redis_url)]
    if is_redis(broker_url) and broker_url != settings.redis_url:
        servers.append(("broker Redis", broker_url))
    return servers


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings shahihooks needs; `celeryconfig.py` shows them with reasons."""
    redis_broker = is_redis(settings.broker_url)
    sentinel = settings.broker_url.startswith("sentinel://")
    return {
        "broker_url": settings.broker_url,
        # kombu's Redis transport with a fix that keeps workers alive across Redis restarts
        "broker_transport": (
            ("shahihooks.broker:SentinelTransport" if sentinel else "shahihooks.broker:Transport")
            if redis_broker
            else None
        ),
        "broker_transport_options": transport_options(settings),
        "broker_connection_retry_on_startup": True,
        # a Redis at its maxmemory refuses kombu's commands (at start: the queue's size, read
        # in MULTI) with an error of the channel: the worker reconnects instead of exiting
        "broker_channel_error_retry": redis_broker,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # a dead-lettered delivery's task fails (FAILURE in Flower): its message is done with
        "task_acks_on_failure_or_timeout": True,
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": settings.queue,
        "task_routes": {"shahihooks.*": {"queue": settings.queue}},
        # two messages per execution slot: when an attempt ends the next message is there
        # (with one, a prefork child waited for its parent's acknowledgement and the broker's
        # next message: ~9 % of its throughput). One waits in the buffer for at most one
        # attempt; with a Redis broker the worker renews the visibility of what it holds
        # (worker.HeldMessages), so the visibility timeout still counts one attempt from the
        # moment the worker holding a message stops
        "worker_prefetch_multiplier": PREFETCH_MULTIPLIER,
        # after a reconnect Celery lowers the prefetch count and raises it back as tasks
        # end; with RabbitMQ a threads worker then sat idle for minutes holding messages
        "worker_enable_prefetch_count_reduction": False,
        "worker_hijack_root_logger": False,
        # the rate limit is shahihooks' own, per URL: Celery's per-task-type one is unused
        "worker_disable_rate_limits": True,
        "broker_pool_limit": 16,
    }


def _content_type(name: str) -> str:
    return str(registry.name_to_type.get(name, name))


def _check_consumer_timeout(conf: Any, settings: Settings) -> None:
    """RabbitMQ closes a channel that holds a message past its consumer_timeout (30 min by
    default; a queue's `x-consumer-timeout` may lower it): a worker holds one for at most
    two attempts' leases (waiting in its buffer behind one, then its own; more if the
    prefetch is raised)."""
    per_slot = int(conf.get("worker_prefetch_multiplier") or PREFETCH_MULTIPLIER)
    held_s = per_slot * lease_s(settings)
    for queue in conf.get("task_queues") or ():
        if getattr(queue, "name", None) != settings.queue:
            continue
        timeout_ms = (getattr(queue, "queue_arguments", None) or {}).get("x-consumer-timeout")
        if timeout_ms is not None and float(timeout_ms) <= held_s * 1000:
            raise ConfigurationError(
                f"the queue {settings.queue!r} has x-consumer-timeout {timeout_ms} ms, but a "
                f"worker may hold a delivery's message {held_s:g} s (waiting behind one "
                "attempt, then its own, each with its margin): RabbitMQ would close the "
                f"channel. Raise it above {held_s * 1000:.0f} ms"
            )


def check_celery_config(conf: Any, settings: Settings) -> None:
    """Refuse Celery settings under which a delivery could be lost or sent twice."""
    if not conf.get("task_acks_late"):
        raise ConfigurationError(
            "task_acks_late is off: a worker that dies mid-delivery would lose it. "
            "Use shahihooks.app.celery_config() or set task_acks_late=True"
        )
    if not conf.get("task_reject_on_worker_lost"):
        raise ConfigurationError(
            "task_reject_on_worker_lost is off: a delivery whose worker process is killed "
            "would be acknowledged and lost. Set task_reject_on_worker_lost=True"
        )
    serializer = str(conf.get("task_serializer") or "json")
    accepted = {_content_type(a) for a in conf.get("accept_content") or ()}
    if _content_type(serializer) not in accepted:
        raise ConfigurationError(
            f"task_serializer is {serializer!r} but accept_content "
            f"{list(conf.get('accept_content') or ())} does not accept it: this worker would "
            'discard every delivery ("Refusing to deserialize untrusted content"). Add '
            f"{serializer!r} to accept_content, on the workers and the apps that emit"
        )
    broker = str(conf.get("broker_url") or "")
    if broker.startswith(("amqp://", "amqps://", "pyamqp://")):
        _check_consumer_timeout(conf, settings)
    if is_redis(broker):
        options = conf.get("broker_transport_options") or {}
        visibility = float(options.get("visibility_timeout", 3600))
        needed = lease_s(settings)
        if visibility <= needed:
            raise ConfigurationError(
                f"broker visibility_timeout is {visibility:g} s, but one attempt may hold its "
                f"message {needed:g} s (SHAHIHOOKS_TIMEOUT {settings.timeout_s:g} s plus "
                f"{LEASE_MARGIN_S:g} s): Redis would redeliver it mid-attempt. Set it above "
                f"{needed:g} s (shahihooks uses {visibility_timeout_s(settings)} s)"
            )
