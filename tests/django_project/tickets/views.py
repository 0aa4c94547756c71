"""A view as an app writes one: a ticket row and its event, in one transaction."""

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from shahihooks.contrib.django import emit
from tests.django_project.tickets.models import Ticket


@csrf_exempt
@require_POST
def create_ticket(request: HttpRequest) -> JsonResponse:
    with transaction.atomic():
        ticket = Ticket.objects.create(title=request.POST["title"])
        emit("ticket.created", {"ticket_id": ticket.pk, "title": ticket.title})
    return JsonResponse({"ticket_id": ticket.pk}, status=201)
