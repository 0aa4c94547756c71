from django.urls import path

from examples.django_receiver import webhook

urlpatterns = [path("webhook/shahi-assist", webhook)]
