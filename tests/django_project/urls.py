from django.urls import path

from examples.django_receiver import webhook
from tests.django_project.tickets.views import create_ticket

urlpatterns = [
    path("webhook/shahi-assist", webhook),
    path("tickets", create_ticket),
]
