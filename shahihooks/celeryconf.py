"""Celery settings for shahihooks, and the startup check that keeps deliveries from being lost.

Countdown retries and rate-limit deferrals wait inside a worker, unacknowledged. With a
Redis broker an unacknowledged message comes back after `visibility_timeout`, so that
timeout must outlast the longest wait plus one request, or a held delivery runs twice.
Late acks and reject-on-worker-lost make a killed worker's deliveries come back at all.
"""

from __future__ import annotations

from typing import Any

from shahihooks.errors import ConfigurationError
from shahihooks.settings import Settings

VISIBILITY_MARGIN_MAX_S = 300


def visibility_timeout_s(settings: Settings) -> int:
    """How long Redis waits before redelivering an unacknowledged delivery.

    The longest countdown plus one request, plus a margin for the spread of deferred
    deliveries and clock skew between workers: a tenth of the wait, 10 s to 5 min.
    """
    longest = settings.longest_delay_s
    margin = min(VISIBILITY_MARGIN_MAX_S, max(10.0, longest / 10))
    return int(longest + settings.timeout_s + margin)


def transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's Redis options: how soon an orphaned delivery is found and given back.

    kombu scans for messages older than the visibility timeout every interval × throttle
    seconds (100 s by default); shahihooks scans every tenth of the timeout (1 to 10 s),
    so recovery after a killed worker is bounded by the timeout, not by the scan.
    """
    visibility = visibility_timeout_s(settings)
    return {
        "visibility_timeout": visibility,
        "unacked_restore_interval": min(10.0, max(1.0, visibility / 10)),
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 60,  # a worker killed mid-scan blocks scans this long
        "socket_connect_timeout": 5,
        "socket_timeout": 30,  # a broker that vanishes without closing: fail, don't hang
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings shahihooks needs; `celeryconfig.py` shows them with reasons."""
    redis_broker = settings.broker_url.startswith(("redis://", "rediss://", "unix://"))
    return {
        "broker_url": settings.broker_url,
        # kombu's Redis transport with a fix that keeps workers alive across Redis restarts
        "broker_transport": "shahihooks.broker:Transport" if redis_broker else None,
        "broker_transport_options": transport_options(settings),
        "broker_connection_retry_on_startup": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # a task that raises met an outage (Redis down): it is requeued, never acked away
        "task_acks_on_failure_or_timeout": False,
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": settings.queue,
        "task_routes": {"shahihooks.*": {"queue": settings.queue}},
        "worker_prefetch_multiplier": 4,
        "worker_hijack_root_logger": False,
        "broker_pool_limit": 16,
    }


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
    broker = str(conf.get("broker_url") or "")
    if broker.startswith(("redis://", "rediss://", "unix://")):
        options = conf.get("broker_transport_options") or {}
        visibility = float(options.get("visibility_timeout", 3600))
        needed = settings.longest_delay_s + settings.timeout_s
        if visibility <= needed:
            raise ConfigurationError(
                f"broker visibility_timeout is {visibility:g} s, but a delivery can wait "
                f"{settings.longest_delay_s:g} s in a countdown (longest retry, Retry-After "
                f"cap or rate window) plus {settings.timeout_s:g} s sending: Redis would "
                f"redeliver it and it would run twice. Set it above {needed:g} s "
                f"(shahihooks uses {visibility_timeout_s(settings)} s)"
            )
