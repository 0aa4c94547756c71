"""One delivery attempt, start to finish: the work behind the `shahihooks.deliver` task.

begin (1 Redis round trip)   delivered already? rate limit; in-flight lease; the body
sign and POST                 or call the action, for `action:` targets
classify                      a pure function (outcome.py)
finish (1 Redis round trip)   lease released; outcome, log, stats, dead letter
hooks                         sent / failed / dead
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from shahihooks.bodystyle import render
from shahihooks.connections import redis_client, script
from shahihooks.endpoints import Endpoint, is_action
from shahihooks.errors import PayloadError
from shahihooks.hooks import Attempt, Hooks
from shahihooks.keys import Keys
from shahihooks.outcome import Kind, Outcome, classify
from shahihooks.payload import envelope
from shahihooks.safety import redact_url
from shahihooks.settings import Settings, check_url
from shahihooks.signing import sign_headers
from shahihooks.transport import Response, post

logger = logging.getLogger("shahihooks.delivery")

# An attempt holds its lease for one request plus this; a killed worker's lease expires.
LEASE_MARGIN_S = 10
LATENCY_BUCKETS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)


@dataclass(frozen=True)
class Step:
    """What the task does next: nothing, or run again after `delay_s` as `attempt`."""

    done: bool
    attempt: int
    reason: str
    delay_s: float = 0.0


def message_id_of(delivery_id: str) -> str:
    return delivery_id.rpartition("-")[0] or delivery_id


def latency_bucket(ms: int) -> str:
    """The histogram field an attempt's duration falls in (for p95 from aggregates)."""
    for upper in LATENCY_BUCKETS_MS:
        if ms <= upper:
            return f"le{upper}"
    return "inf"


def run_attempt(
    delivery_id: str, url: str, event: str, attempt: int, settings: Settings, hooks: Hooks
) -> Step:
    client = redis_client(settings.redis_url)
    keys = Keys(settings.prefix)
    now = time.time()
    window = int(now // settings.rate_window_s)
    token = uuid.uuid4().hex
    begun = script(client, "begin")(
        keys=[
            keys.done(delivery_id),
            keys.lease(delivery_id),
            keys.rate(url, window),
            keys.body(message_id_of(delivery_id)),
            keys.endpoints,
            keys.pending_at,
        ],
        args=[
            attempt,
            token,
            int((settings.timeout_s + LEASE_MARGIN_S) * 1000),
            0 if is_action(url) else settings.rate_limit,
            2 * settings.rate_window_s,
            url,
            (window + 1) * settings.rate_window_s - now,
            settings.idempotency_ttl_s,
            delivery_id,
            f"{now:.3f}",
        ],
    )
    status = _text(begun[0])
    if status in ("done", "stale"):
        return Step(True, attempt, f"already {'delivered' if status == 'done' else 'handled'}")
    if status == "defer":
        spread = random.uniform(0, min(60.0, settings.rate_window_s / 10))
        delay = float(begun[1]) + spread
        return Step(
            False, attempt, f"rate limited: deferred {delay:.0f} s to the next window", delay
        )
    if status == "busy":
        return Step(False, attempt, "in flight in another worker", int(begun[1]) / 1000 + 1)
    if status == "gone":
        return _finish_without_body(delivery_id, url, event, attempt, settings, token)

    event_name, ts, site, data, raw_endpoint = (_text(v) for v in begun[1:6])
    body = envelope(delivery_id, event_name, int(ts), site, data)
    # a URL not in the store (SHAHIHOOKS_URLS, the webhook_urls filter) has the settings' style
    endpoint = (
        Endpoint.from_json(raw_endpoint)
        if raw_endpoint
        else Endpoint(url, body_style=settings.body_style)
    )
    response = _send(url, body, delivery_id, event_name, attempt, endpoint, settings, hooks)
    outcome = classify(
        status=response.status,
        error=response.error,
        attempt=attempt,
        schedule_s=settings.retry_schedule_s,
        retry_after=response.retry_after,
        retry_after_max_s=settings.retry_after_max_s,
        location=response.location,
        now=time.time(),
    )
    _finish(delivery_id, url, event_name, attempt, response, outcome, settings, token, body)
    if hooks.any_attempt_hooks():
        hooks.run(
            Attempt(
                delivery_id,
                url,
                event_name,
                attempt,
                body,
                response.status,
                response.error,
                response.duration_s,
                outcome.kind.value,
                response.body,
            )
        )
    if outcome.kind is Kind.RETRY:
        return Step(False, attempt + 1, outcome.reason, outcome.delay_s)
    return Step(True, attempt, outcome.reason)


def _send(
    url: str,
    body: bytes,
    delivery_id: str,
    event: str,
    attempt: int,
    endpoint: Endpoint,
    settings: Settings,
    hooks: Hooks,
) -> Response:
    if is_action(url):
        return _run_action(url, body, hooks)
    secrets = endpoint.secrets or settings.secrets
    if not secrets:
        return Response(None, 0.0, error="no secret: set SHAHIHOOKS_SECRET or the endpoint's")
    try:
        check_url(url, settings)
    except Exception as exc:
        return Response(None, 0.0, error=f"refused: {exc}")
    try:
        body = render(body, endpoint.body_style)  # what the receiver will re-encode and sign
    except PayloadError as exc:
        return Response(None, 0.0, error=f"refused: body style {endpoint.body_style}: {exc}")
    headers = sign_headers(
        body, delivery_id=delivery_id, event=event, secrets=secrets, attempt=attempt
    )
    return post(url, body, headers, settings)


def _run_action(url: str, body: bytes, hooks: Hooks) -> Response:
    import json

    func = hooks.find_action(url)
    start = time.monotonic()
    if func is None:
        return Response(None, 0.0, error=f"no action registered as {url!r} in this worker")
    try:
        func(json.loads(body))
    except Exception as exc:
        return Response(None, time.monotonic() - start, error=f"{type(exc).__name__}: {exc}")
    return Response(200, time.monotonic() - start)


def _finish(
    delivery_id: str,
    url: str,
    event: str,
    attempt: int,
    response: Response,
    outcome: Outcome,
    settings: Settings,
    token: str,
    body: bytes,
) -> None:
    keys = Keys(settings.prefix)
    now = time.time()
    ms = int(response.duration_s * 1000)
    shown_url = redact_url(url)
    log = {
        "ts": f"{now:.3f}",
        "id": delivery_id,
        "url": shown_url,
        "event": event,
        "attempt": str(attempt),
        "outcome": outcome.kind.value,
        "status": "" if response.status is None else str(response.status),
        "ms": str(ms),
        "error": "" if outcome.kind is Kind.DELIVERED else outcome.reason,
        "next_s": f"{outcome.delay_s:g}" if outcome.kind is Kind.RETRY else "",
    }
    dead: dict[str, Any] = {}
    if outcome.kind is Kind.DEAD:
        dead = {
            "id": delivery_id,
            "url": url,
            "event": event,
            "attempts": str(attempt),
            "reason": outcome.reason,
            "status": log["status"],
            "died_at": f"{now:.3f}",
            "body": body,
            "response": response.body[:2000],
        }
    flat_log = [x for pair in log.items() for x in pair]
    flat_dead = [x for pair in dead.items() for x in pair]
    client = redis_client(settings.redis_url)
    script(client, "finish")(
        keys=[
            keys.done(delivery_id),
            keys.lease(delivery_id),
            keys.body(message_id_of(delivery_id)),
            keys.log,
            keys.stats(int(now // 3600)),
            keys.dead_index,
            keys.dead(delivery_id),
            keys.pending,
            keys.pending_at,
        ],
        args=[
            outcome.kind.value,
            attempt,
            token,
            settings.idempotency_ttl_s,
            settings.log_max_len,
            settings.stats_retention_s,
            f"{shown_url} {event} ",
            ms,
            latency_bucket(ms),
            f"{now:.3f}",
            delivery_id,
            len(log),
            *flat_log,
            *flat_dead,
        ],
    )
    level = logging.INFO if outcome.kind is Kind.DELIVERED else logging.WARNING
    logger.log(
        level,
        "%s %s -> %s attempt %d: %s in %d ms%s",
        outcome.kind.value,
        delivery_id,
        shown_url,
        attempt,
        outcome.reason,
        ms,
        f", next in {outcome.delay_s:g} s" if outcome.kind is Kind.RETRY else "",
    )


def _finish_without_body(
    delivery_id: str, url: str, event: str, attempt: int, settings: Settings, token: str
) -> Step:
    reason = "the stored body is gone (expired after SHAHIHOOKS_IDEMPOTENCY_TTL, or Redis lost it)"
    logger.error("dead %s -> %s: %s", delivery_id, redact_url(url), reason)
    outcome = Outcome(Kind.DEAD, reason)
    _finish(
        delivery_id,
        url,
        event,
        attempt,
        Response(None, 0.0, error=reason),
        outcome,
        settings,
        token,
        b"",
    )
    return Step(True, attempt, reason)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
