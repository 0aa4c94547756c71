"""Create the schema, one webhook to URL, then N tickets: each save enqueues one delivery
through django-webhook's own post_save signal.

    python -m bench.peer.enqueue N URL
"""

import sys

from bench.peer.worker import app  # Django set up, this Celery app the current one


def main(count: int, url: str) -> None:
    from django.core.management import call_command
    from django.db import transaction
    from django_webhook.models import Webhook, WebhookEvent, WebhookSecret, WebhookTopic

    from bench.peer.models import Ticket

    call_command("migrate", run_syncdb=True, verbosity=0)
    WebhookEvent.objects.all().delete()
    Ticket.objects.all().delete()
    Webhook.objects.all().delete()
    hook = Webhook.objects.create(url=url)
    topic, _ = WebhookTopic.objects.get_or_create(name="peer.Ticket/create")
    hook.topics.set([topic])
    WebhookSecret.objects.create(webhook=hook, token="bench-secret-0123456789")  # noqa: S106
    with transaction.atomic():
        for i in range(count):
            Ticket.objects.create(title=f"Login issue {i}", content="x" * 940, status="open")


if __name__ == "__main__":
    assert app.main == "peer"
    main(int(sys.argv[1]), sys.argv[2])
