"""Django: add `"shahihooks.contrib.django"` to INSTALLED_APPS and `SHAHIHOOKS = {...}`.

from shahihooks.contrib.django import emit, webhook_receiver

with transaction.atomic():
    ticket = Ticket.objects.create(...)
    emit("ticket.created", {"ticket_id": ticket.pk})   # written to the outbox with the row,
                                                       # sent after COMMIT (outbox.py)

@csrf_exempt
@webhook_receiver()                                    # 401 on a bad signature
def hook(request):                                     # duplicates never get here
    handle(request.webhook)                            # the verified payload
    return JsonResponse({"status": "success"})
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

try:
    from django.http import HttpRequest, HttpResponse, JsonResponse
except ImportError:  # pragma: no cover - exercised without Django installed
    raise ImportError(
        "shahihooks.contrib.django needs Django: pip install 'shahihooks[django]'"
    ) from None

from shahihooks.contrib.django.outbox import emit
from shahihooks.keys import Keys
from shahihooks.receiving import Receiver, Seen, declared_too_large
from shahihooks.settings import current

__all__ = ["cache_seen", "emit", "webhook_receiver"]

View = Callable[..., HttpResponse]


def cache_seen(alias: str = "default", ttl_s: int = 7 * 86_400) -> Seen:
    """Delivery ids remembered in a Django cache (`cache.add` is atomic on Redis/memcached).

    Keys are under SHAHIHOOKS["PREFIX"], as every other key, read when a delivery arrives.
    """
    from django.core.cache import caches

    cache = caches[alias]

    def add(delivery_id: str) -> bool:
        return bool(cache.add(Keys(current().prefix).received(delivery_id), 1, ttl_s))

    def forget(delivery_id: str) -> None:
        cache.delete(Keys(current().prefix).received(delivery_id))

    return Seen(add, forget)


def read_bounded(request: HttpRequest, limit: int) -> bytes | None:
    """The request body if it is at most `limit` bytes (None if more); never reads more than
    `limit + 1` bytes. The view can still use `request.body`."""
    if declared_too_large(request.META.get("CONTENT_LENGTH"), limit):
        return None
    body: bytes = request.read(limit + 1)
    if len(body) > limit:
        return None
    request._body = body  # what Django's own `request.body` caches
    return body


def webhook_receiver(
    secret: str | Sequence[str] | None = None,
    seen: Seen | None = None,
    *,
    max_body_bytes: int | None = None,
    standard_only: bool = False,
) -> Callable[[View], View]:
    """Verify each delivery, answer 401 to a bad one and 413 to a too large one, drop
    duplicates.

    The body is bounded by `max_body_bytes` (default SHAHIHOOKS["MAX_BODY_BYTES"]) before
    it is read. Any `webhook-*` header means the Standard Webhooks headers must verify;
    `standard_only=True` refuses deliveries signed by the page's header alone. The view
    gets the verified payload as `request.webhook`. A delivery whose view fails (raises or
    answers 4xx/5xx) is forgotten, so the sender's retry is processed.
    """

    receiver = Receiver(secret, seen, max_body_bytes, standard_only)

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            def handler(payload: Any) -> HttpResponse:
                request.webhook = payload
                return view(request, *args, **kwargs)

            return receiver.handle(
                functools.partial(read_bounded, request),
                dict(request.headers),
                lambda status, body: JsonResponse(body, status=status),
                handler,
            )

        return wrapper

    return decorate
