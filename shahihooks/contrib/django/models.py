"""The outbox table: events emitted inside a transaction, written with its rows."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class OutboxEvent(models.Model):
    """One event waiting to be pushed to Redis: after its transaction commits (then it is
    deleted at once), or by the project's worker if Redis was unreachable at that moment."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    event = models.CharField(max_length=200)
    data = models.TextField(help_text="the event's data, as JSON (encoded once, at emit)")
    key = models.TextField(help_text="the idempotency key it is pushed with")
    attempts = models.PositiveIntegerField(default=0)
    next_try_at = models.DateTimeField(db_index=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "shahihooks_outbox"
        verbose_name = "outbox event"

    def __str__(self) -> str:
        return f"{self.event} {self.id}"
