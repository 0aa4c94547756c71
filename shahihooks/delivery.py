"""One delivery attempt, start to finish: the work behind the `shahihooks.deliver` task.

begin (1 Redis round trip)   the live message of a queued delivery? its URL's window; the
                             attempt holds the delivery; the URL, the body, the endpoint
sign and POST                or call the action, for `action:` targets
classify                     a pure function (outcome.py)
finish (1 Redis round trip)  log and stats; delivered, dead letter, or the retry scheduled;
                             when Redis is away, tried again within the attempt's lease (the
                             outcome is kept: requeued, it would be sent twice)
hooks                        sent / failed / dead
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Literal

from shahihooks import health, ops, tracing
from shahihooks.bodystyle import render
from shahihooks.connections import OUTAGES
from shahihooks.endpoints import Endpoint, is_action, settings_urls
from shahihooks.errors import ConfigurationError, PayloadError
from shahihooks.hooks import Attempt, Hooks
from shahihooks.logline import entry, latency_bucket, stats_prefix
from shahihooks.outcome import REASON_MAX, Judgement, Kind, classify, cut
from shahihooks.payload import envelope
from shahihooks.safety import check_url, redact_url
from shahihooks.settings import Settings
from shahihooks.signing import fingerprint, sign_headers
from shahihooks.state import (
    BUG_PAUSE_S,
    Ack,
    Begun,
    Due,
    Finish,
    Finished,
    MessageRef,
    Outcome,
    State,
    Verdict,
)
from shahihooks.timings import lease_s
from shahihooks.transport import Response, post

logger = logging.getLogger("shahihooks.delivery")

FINISH_PAUSE_S = (0.1, 0.2, 0.5, 1.0)  # between tries of `finish` while Redis is away
FINISH_LEASE_MARGIN_S = 2.0  # given up this long before the lease ends (then requeued)


@dataclass(frozen=True)
class Job:
    """One delivery through one attempt: what `begin` handed over."""

    ref: MessageRef
    url: str
    event: str
    attempt: int
    body: bytes
    endpoint: Endpoint | None
    source: str = ""  # "store", "urls", "ops" or "" (a filter, an action)
    fingerprint: str = ""  # of the secret the emitting app signs with
    traceparent: str = ""  # the emit's trace context (tracing.py)

    @classmethod
    def from_begun(cls, ref: MessageRef, begun: Begun) -> Job:
        """The attempt `begin` let go ahead: its body rebuilt from the stored parts."""
        body = envelope(ref.delivery_id, begun.event, begun.timestamp, begun.site, begun.data)
        endpoint = Endpoint.from_json(begun.endpoint_json) if begun.endpoint_json else None
        return cls(
            ref,
            begun.url,
            begun.event,
            begun.attempt,
            body,
            endpoint,
            begun.source,
            begun.fingerprint,
            begun.traceparent,
        )

    @property
    def delivery_id(self) -> str:
        return self.ref.delivery_id

    @property
    def shown_url(self) -> str:
        return redact_url(self.url)

    def secrets(self, settings: Settings) -> tuple[str, ...]:
        """What signs it: the stored endpoint's own secrets, else the settings' (the
        operational secret for an operational event)."""
        if self.endpoint and self.endpoint.secrets:
            return self.endpoint.secrets
        return settings.ops_secrets if self.source == "ops" else settings.secrets

    def __repr__(self) -> str:
        """Without the URL's credentials or the body (error trackers capture locals)."""
        return (
            f"Job(delivery_id={self.delivery_id!r}, token={self.ref.token!r}, "
            f"url={self.shown_url!r}, event={self.event!r}, attempt={self.attempt!r}, "
            f"body=<{len(self.body)} bytes>, endpoint={self.endpoint!r})"
        )

    def traced(self) -> dict[str, str | int]:
        """The attempt's span attributes (the URL masked, as everywhere)."""
        return {
            "shahihooks.delivery_id": self.delivery_id,
            "shahihooks.event": self.event,
            "shahihooks.attempt": self.attempt,
            "url.full": self.shown_url,
        }

    def seen_by_hooks(self, response: Response, judgement: Judgement) -> Attempt:
        return Attempt(
            self.delivery_id,
            self.url,
            self.event,
            self.attempt,
            self.body,
            response.status,
            response.error,
            response.duration_s,
            judgement.kind.value,
            response.body,
        )


# what `begin` answers when the attempt does not go ahead
NoAttempt = Literal[Verdict.STALE, Verdict.BUSY, Verdict.DEFERRED, Verdict.DEAD]


@dataclass(frozen=True)
class Result:
    """What became of one message: the task reports it to Celery (and Flower)."""

    verdict: NoAttempt | Kind
    reason: str
    delay_s: float = 0.0
    acked: bool = False  # its message was acknowledged with the outcome
    released: tuple[Due, ...] = ()  # what its endpoint's backlog may now send: to publish


def run_attempt(ref: MessageRef, hooks: Hooks, state: State, ack: Ack | None = None) -> Result:
    """Run the attempt that message `ref` stands for, under `state.settings`; `ack`:
    acknowledge the message with the outcome (its `Result.acked` says whether that happened)."""
    # the outcome is recorded until shortly before the attempt's lease ends (see `finish`)
    until = time.monotonic() + lease_s(state.settings) - FINISH_LEASE_MARGIN_S
    begun = state.begin(ref)
    if begun.verdict is not Verdict.GO:
        return Result(begun.verdict, begun.reason or begun.verdict.value)
    job = Job.from_begun(ref, begun)
    settings = state.settings
    try:
        unsendable = refusal(job, settings, hooks)
        if unsendable:
            response = Response(None, 0.0, error=unsendable, permanent=True)
            judgement = Judgement(Kind.DEAD, unsendable)
        else:
            with tracing.attempt_span(job.traceparent or None, "shahihooks.deliver", job.traced()):
                response = send(job, settings, hooks)
            judgement = classify(response, job.attempt, settings.retry_policy, time.time())
    except Exception as exc:
        # a bug, not an outage: tried again a few times, then dead-lettered (state.py)
        logger.exception("bug in the attempt of %s -> %s", ref.delivery_id, job.shown_url)
        reason = f"{type(exc).__name__}: {exc}"
        bug = Outcome(Finished.BUG, BUG_PAUSE_S, reason=reason)
        done = finish(state, ref, bug, ack, until)
        if done.ops_waiting:
            _send_ops(settings, hooks)
        return Result(Kind.RETRY, reason, BUG_PAUSE_S, ack is not None, tuple(done.released))
    signal = (
        ""
        if unsendable or is_action(job.url)
        else health.signal_for(response.status, response.error, response.permanent)
    )
    record = recorded(job, response, judgement, signal)
    finished = finish(state, ref, record, ack, until)
    _log(job, response, judgement, finished.kind)
    if hooks.any_attempt_hooks():
        hooks.run(job.seen_by_hooks(response, judgement))
    if finished.ops_waiting:
        _send_ops(settings, hooks)
    kind = Kind.DEAD if finished.kind is Finished.DEAD else judgement.kind
    return Result(
        kind, judgement.reason, judgement.delay_s, ack is not None, tuple(finished.released)
    )


def finish(state: State, ref: MessageRef, done: Outcome, ack: Ack | None, until: float) -> Finish:
    """`state.finish`, tried again while Redis is away, `until` (time.monotonic()) shortly
    before the attempt's lease ends. Requeued instead, the delivery would be sent again
    after the lease: a duplicate of an attempt whose outcome is known. Past the lease the
    schedule hands the delivery on, so the outage is raised (requeued)."""
    delivery_id = ref.delivery_id
    tries = 0
    while True:
        try:
            found = state.finish(ref, done, ack, again=tries > 0)
        except OUTAGES as exc:
            pause = FINISH_PAUSE_S[min(tries, len(FINISH_PAUSE_S) - 1)]
            if time.monotonic() + pause > until:
                raise
            if not tries:
                logger.warning(
                    "%s: recording the outcome (%s) met %s: %s; trying again within its lease",
                    delivery_id,
                    done.kind.value,
                    type(exc).__name__,
                    exc,
                )
            tries += 1
            time.sleep(pause)
            continue
        if tries:
            logger.warning("%s: outcome recorded after %d tries", delivery_id, tries + 1)
        return found


def refusal(job: Job, settings: Settings, hooks: Hooks) -> str:
    """Why this worker must not send the delivery at all, or '': it was emitted under
    settings whose secret this worker does not have (another app's: it would be signed with
    the wrong secret), or its URL was removed from the list it came from (a worker with a
    list of its own judges by it; one with none cannot tell, and sends)."""
    if is_action(job.url) or job.source == "store":
        return ""
    if job.fingerprint and job.fingerprint not in _fingerprints(job.secrets(settings)):
        return (
            f"emitted under settings whose secret (fingerprint {job.fingerprint}) this worker "
            "does not have: not signed with its own. Run a worker with the emitting app's "
            "settings (Flask: `flask --app <that app> shahihooks worker`), then replay it"
        )
    if job.source == "ops" and settings.ops_urls and job.url not in settings.ops_urls:
        return "endpoint removed: no longer in SHAHIHOOKS_OPS_URLS (this worker's settings)"
    if (
        job.source == "urls"
        and settings.urls
        and job.url not in settings_urls(job.event, settings, hooks)
    ):
        return (
            "endpoint removed: no longer in SHAHIHOOKS_URLS (for this event, after the "
            "webhook_urls filters) in this worker's settings"
        )
    return ""


def _fingerprints(secrets: tuple[str, ...]) -> set[str]:
    return {fingerprint(s) for s in secrets}


def _send_ops(settings: Settings, hooks: Hooks) -> None:
    """Operational events this attempt caused: sent now (the mover would within a second)."""
    try:
        ops.drain(settings, hooks)
    except Exception as exc:  # left in Redis: the mover sends them
        logger.warning("operational events not sent yet (%s: %s)", type(exc).__name__, exc)


def send(job: Job, settings: Settings, hooks: Hooks) -> Response:
    """Sign and POST the body, or call the action; never raises for what the peer does."""
    if is_action(job.url):
        return _run_action(job, hooks)
    secrets = job.secrets(settings)
    if not secrets:
        return Response(None, 0.0, error="no secret: set SHAHIHOOKS_SECRET or the endpoint's")
    try:
        check_url(job.url, settings)
    except Exception as exc:
        return Response(None, 0.0, error=f"refused: {exc}", permanent=True)
    # a URL not in the store (SHAHIHOOKS_URLS, the webhook_urls filter) has the settings' style
    style = job.endpoint.body_style if job.endpoint else settings.body_style
    try:
        body = render(job.body, style)  # the bytes the receiver re-encodes and checks
    except PayloadError as exc:
        return Response(None, 0.0, error=f"refused: body style {style}: {exc}")
    try:
        headers = sign_headers(
            body, delivery_id=job.delivery_id, event=job.event, secrets=secrets, attempt=job.attempt
        )
    except ConfigurationError as exc:  # a secret stored before the rules: fixed by an operator
        return Response(None, 0.0, error=f"refused: {exc}")
    if tracing.enabled():
        tracing.inject_headers(headers)  # the receiver continues the emit's trace
    return post(job.url, body, headers, settings)


def _run_action(job: Job, hooks: Hooks) -> Response:
    func = hooks.find_action(job.url)
    start = time.monotonic()
    if func is None:
        return Response(None, 0.0, error=f"no action registered as {job.url!r} in this worker")
    try:
        func(json.loads(job.body))
    except Exception as exc:
        return Response(None, time.monotonic() - start, error=f"{type(exc).__name__}: {exc}")
    return Response(200, time.monotonic() - start)


def recorded(job: Job, response: Response, judgement: Judgement, signal: str = "") -> Outcome:
    """What `finish` writes about the attempt: log entry, stats, dead letter or retry."""
    ms = int(response.duration_s * 1000)
    status = "" if response.status is None else str(response.status)
    reason = cut(judgement.reason, REASON_MAX)  # whatever it quotes of the receiver, bounded
    log = entry(
        delivery_id=job.delivery_id,
        url=job.shown_url,
        event=job.event,
        attempt=job.attempt,
        outcome=judgement.kind.value,
        status=status,
        ms=ms,
        error="" if judgement.kind is Kind.DELIVERED else reason,
        next_s=f"{judgement.delay_s:g}" if judgement.kind is Kind.RETRY else "",
    )
    return Outcome(
        kind=Finished(judgement.kind.value),
        delay_s=judgement.delay_s,
        status=status,
        reason=reason,
        response=response.body[:2000] if judgement.kind is Kind.DEAD else "",
        stats_prefix=stats_prefix(job.shown_url, job.event),
        duration_ms=ms,
        bucket=latency_bucket(ms),
        log=log,
        signal=signal,
    )


def _log(job: Job, response: Response, judgement: Judgement, finished: Finished) -> None:
    if finished is Finished.STALE:
        logger.warning(
            "%s -> %s attempt %d ended (%s) after its delivery was handed on (its lease ran "
            "out) or removed (its state deleted): this outcome changes nothing",
            job.delivery_id,
            job.shown_url,
            job.attempt,
            judgement.reason,
        )
        return
    level = logging.INFO if judgement.kind is Kind.DELIVERED else logging.WARNING
    logger.log(
        level,
        "%s %s -> %s attempt %d: %s in %d ms%s",
        judgement.kind.value,
        job.delivery_id,
        job.shown_url,
        job.attempt,
        judgement.reason,
        int(response.duration_s * 1000),
        f", next in {judgement.delay_s:g} s" if judgement.kind is Kind.RETRY else "",
    )
