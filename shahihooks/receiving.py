"""What a receiving app does with a delivery: verify it, and drop one it has seen before.

Framework adapters (contrib/django.py, contrib/flask.py) are thin shells around these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from shahihooks.connections import redis_client
from shahihooks.errors import ConfigurationError, VerificationError
from shahihooks.keys import Keys
from shahihooks.settings import Settings, current
from shahihooks.signing import verify

DEDUPE_TTL_S = 7 * 86_400


@dataclass(frozen=True)
class Seen:
    """Remembers delivery ids; `first(id)` is true once per id (atomically)."""

    add: Callable[[str], bool]  # True if the id was not there yet
    forget: Callable[[str], None]

    def first(self, delivery_id: str) -> bool:
        return self.add(delivery_id)


def redis_seen(settings: Settings | None = None, ttl_s: int = DEDUPE_TTL_S) -> Seen:
    """Delivery ids remembered in Redis (shared by every process of the receiving app)."""
    settings = settings or current()
    client = redis_client(settings.redis_url)
    keys = Keys(settings.prefix)

    def add(delivery_id: str) -> bool:
        return bool(client.set(keys.received(delivery_id), b"1", nx=True, ex=ttl_s))

    def forget(delivery_id: str) -> None:
        client.delete(keys.received(delivery_id))

    return Seen(add, forget)


def secrets_for(secret: str | Sequence[str] | None) -> list[str]:
    """The secrets a receiver checks: those given, else the configured ones."""
    if secret:
        return [secret] if isinstance(secret, str) else list(secret)
    configured = list(current().secrets)
    if not configured:
        raise ConfigurationError(
            "a webhook receiver needs a secret: pass secret=... or set SHAHIHOOKS_SECRET"
        )
    return configured


def delivery_id_of(headers: Mapping[str, str], payload: Any) -> str:
    lower = {k.lower(): v for k, v in headers.items()}
    found = lower.get("webhook-id") or lower.get("x-shahi-assist-delivery")
    if not found and isinstance(payload, dict):
        found = str(payload.get("id") or "")
    return found or ""


def check(body: bytes, headers: Mapping[str, str], secrets: list[str]) -> Any:
    """The verified payload (raises VerificationError)."""
    return verify(body, headers, secrets)


T = TypeVar("T")


@dataclass(frozen=True)
class Verdict:
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


def receive(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | Sequence[str] | None,
    seen: Seen | None,
) -> Verdict:
    """Verify a delivery (401 if bad) and drop a duplicate (200 "duplicate")."""
    try:
        payload = check(body, headers, secrets_for(secret))
    except VerificationError as exc:
        return Verdict(None, "", (401, {"error": "Invalid signature", "detail": str(exc)}))
    delivery_id = delivery_id_of(headers, payload)
    remember = seen or redis_seen()
    if delivery_id and not remember.first(delivery_id):
        return Verdict(payload, delivery_id, (200, {"status": "duplicate", "id": delivery_id}))
    return Verdict(payload, delivery_id, None, remember)
