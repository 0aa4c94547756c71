"""A Django view receiving shahihooks deliveries: the page's Laravel handler, in Django.

# urls.py
path("webhook/shahi-assist", examples.django_receiver.webhook)
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from shahihooks.contrib.django import webhook_receiver

handled: list[dict[str, Any]] = []


@csrf_exempt
@require_POST
@webhook_receiver()
def webhook(request: HttpRequest) -> JsonResponse:
    payload = request.webhook  # type: ignore[attr-defined]
    handled.append(payload)
    return JsonResponse({"status": "success"})
