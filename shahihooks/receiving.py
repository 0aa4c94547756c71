"""What a receiving app does with a delivery: bound it, verify it, drop one it has seen before.

Framework adapters (contrib/django, contrib/flask) are thin shells around these.

Replay protection comes from signed data only; an unsigned header never decides whether a
handler runs:
- Standard Webhooks headers (`webhook-*`): the timestamp must be within 5 minutes, and the
  verified `webhook-id` is remembered, so a replay inside those 5 minutes is a duplicate.
- The page's scheme (`X-Shahi-Assist-Signature` alone) signs the body and no time: the
  dedupe key is the body's own `id` (a hash of the body when it has none), remembered for
  DEDUPE_TTL_S. A replay after that runs again; `standard_only=True` refuses this scheme.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import redis

from shahihooks import shards
from shahihooks.connections import state_redis
from shahihooks.errors import ConfigurationError, VerificationError
from shahihooks.keys import Keys
from shahihooks.settings import Settings, current
from shahihooks.signing import secret_keys, signed_id, verify

logger = logging.getLogger("shahihooks.receiving")

DEDUPE_TTL_S = 7 * 86_400
UNAUTHORIZED = (401, {"error": "Invalid signature"})
TOO_LARGE = (413, {"error": "Payload too large"})


@dataclass(frozen=True)
class Seen:
    """Remembers delivery ids; `first(id)` is true once per id (atomically)."""

    add: Callable[[str], bool]  # True if the id was not there yet
    forget: Callable[[str], None]

    def first(self, delivery_id: str) -> bool:
        return self.add(delivery_id)


def _received(settings: Settings, delivery_id: str) -> tuple[redis.Redis, str]:
    """Where a delivery's record is kept: in a Redis Cluster, in the delivery's shard."""
    if not settings.redis_cluster:
        return state_redis(settings), Keys(settings.prefix).received(delivery_id)
    state = shards.of_delivery(settings, delivery_id)
    return state.client, state.keys.received(delivery_id)


def redis_seen(settings: Settings | None = None, ttl_s: int = DEDUPE_TTL_S) -> Seen:
    """Delivery ids remembered in Redis (shared by every process of the receiving app)."""
    chosen = settings or current()
    _received(chosen, "")  # a bad Redis URL is said here, not at the first delivery received

    def add(delivery_id: str) -> bool:
        client, key = _received(chosen, delivery_id)
        return bool(client.set(key, b"1", nx=True, ex=ttl_s))

    def forget(delivery_id: str) -> None:
        client, key = _received(chosen, delivery_id)
        client.delete(key)

    return Seen(add, forget)


def secrets_for(secret: str | Sequence[str] | None) -> list[str]:
    """The secrets a receiver checks: those given (each at least 16 bytes), else the
    configured ones."""
    if secret:
        given = [secret] if isinstance(secret, str) else list(secret)
        secret_keys(given, "the receiver's secret (webhook_receiver(secret=...))")
        return given
    configured = list(current().secrets)
    if not configured:
        raise ConfigurationError(
            "a webhook receiver needs a secret: pass secret=... or set SHAHIHOOKS_SECRET"
        )
    return configured


def dedupe_key(signed: str, body: bytes) -> str:
    """The key a delivery is remembered by: `signed`, an id its signature covers, never a
    header that nothing signs. A page-scheme body without an `id` is keyed by its hash."""
    if signed:
        return signed
    return "sha256:" + hashlib.sha256(body).hexdigest()


def body_limit(max_body_bytes: int | None) -> int:
    """The most a receiver reads: the argument, else SHAHIHOOKS_MAX_BODY_BYTES."""
    return max_body_bytes if max_body_bytes is not None else current().max_body_bytes


def declared_too_large(content_length: object, limit: int) -> bool:
    """True if a request's Content-Length (as sent, maybe absent or junk) is over `limit`.

    A junk or negative value counts as too large: it is refused before anything is read.
    """
    if content_length is None or content_length == "":
        return False
    try:
        declared = int(str(content_length).strip())
    except ValueError:
        return True
    return not 0 <= declared <= limit


T = TypeVar("T")


@dataclass(frozen=True)
class Handling:
    """What to do with one received delivery: answer `reply` now, or run the handler."""

    payload: Any
    delivery_id: str
    reply: tuple[int, dict[str, str]] | None
    seen: Seen | None = None

    def run(self, handler: Callable[[], T], status_of: Callable[[T], int]) -> T:
        """Run the app's handler; forget the id if it fails, so the sender's retry counts."""
        try:
            result = handler()
        except Exception:
            self.forget()
            raise
        if status_of(result) >= 400:
            self.forget()
        return result

    def forget(self) -> None:
        if self.seen is not None and self.delivery_id:
            self.seen.forget(self.delivery_id)


def too_large(limit: int) -> Handling:
    """413, logged."""
    logger.warning("webhook refused: the body is over %d bytes (413)", limit)
    return Handling(None, "", TOO_LARGE)


def receive(
    body: bytes | None,
    headers: Mapping[str, str],
    secret: str | Sequence[str] | None,
    seen: Seen | None,
    *,
    max_body_bytes: int | None = None,
    standard_only: bool = False,
) -> Handling:
    """Bound (413), verify (401, details logged, not answered) and drop a duplicate (200).

    Adapters read at most `max_body_bytes + 1` bytes, and pass None for a body they found
    too large without reading it; either way it is refused here before it is hashed.
    """
    limit = body_limit(max_body_bytes)
    if body is None or len(body) > limit:
        return too_large(limit)
    try:
        payload = verify(body, headers, secrets_for(secret), standard_only=standard_only)
    except VerificationError as exc:
        logger.warning("webhook refused (401): %s", exc)
        return Handling(None, "", UNAUTHORIZED)
    key = dedupe_key(signed_id(payload, headers), body)
    remember = seen or redis_seen()
    if not remember.first(key):
        logger.info("webhook %s is a duplicate: not handled again", key)
        return Handling(payload, key, (200, {"status": "duplicate", "id": key}))
    return Handling(payload, key, None, remember)


class Answer(Protocol):
    """A framework's response: its status says whether the handler failed."""

    @property
    def status_code(self) -> int: ...


A = TypeVar("A", bound=Answer)
R = TypeVar("R")


@dataclass(frozen=True)
class Receiver:
    """The options of one `webhook_receiver(...)`, and the walk every framework's adapter
    takes with a request."""

    secret: str | Sequence[str] | None = None
    seen: Seen | None = None
    max_body_bytes: int | None = None
    standard_only: bool = False

    def handle(
        self,
        read: Callable[[int], bytes | None],
        headers: Mapping[str, str],
        reply: Callable[[int, dict[str, str]], R],
        handler: Callable[[Any], A],
    ) -> R | A:
        """Read the body (`read(limit)`: None if it is over the limit), then `reply` now
        (413, 401, a duplicate's 200) or run `handler(payload)`."""
        limit = body_limit(self.max_body_bytes)
        handling = receive(
            read(limit),
            headers,
            self.secret,
            self.seen,
            max_body_bytes=limit,
            standard_only=self.standard_only,
        )
        if handling.reply is not None:
            return reply(handling.reply[0], handling.reply[1])
        payload = handling.payload
        return handling.run(lambda: handler(payload), lambda answer: answer.status_code)
