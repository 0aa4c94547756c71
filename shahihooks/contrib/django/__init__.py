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
from shahihooks.receiving import Seen, receive

__all__ = ["cache_seen", "emit", "webhook_receiver"]

View = Callable[..., HttpResponse]


def cache_seen(alias: str = "default", ttl_s: int = 7 * 86_400) -> Seen:
    """Delivery ids remembered in a Django cache (`cache.add` is atomic on Redis/memcached)."""
    from django.core.cache import caches

    cache = caches[alias]
    keys = Keys()

    def add(delivery_id: str) -> bool:
        return bool(cache.add(keys.received(delivery_id), 1, ttl_s))

    def forget(delivery_id: str) -> None:
        cache.delete(keys.received(delivery_id))

    return Seen(add, forget)


def webhook_receiver(
    secret: str | Sequence[str] | None = None, seen: Seen | None = None
) -> Callable[[View], View]:
    """Verify each delivery (either scheme), answer 401 to a bad one, drop duplicates.

    The view gets the verified payload as `request.webhook`. A delivery whose view fails
    (raises or answers 4xx/5xx) is forgotten, so the sender's retry is processed.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            verdict = receive(request.body, dict(request.headers), secret, seen)
            if verdict.reply is not None:
                return JsonResponse(verdict.reply[1], status=verdict.reply[0])
            request.webhook = verdict.payload
            return verdict.run(lambda: view(request, *args, **kwargs), lambda r: r.status_code)

        return wrapper

    return decorate
