"""The outbox table (shahihooks.contrib.django.models.OutboxEvent)."""

import uuid

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="OutboxEvent",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("event", models.CharField(max_length=200)),
                (
                    "data",
                    models.TextField(help_text="the event's data, as JSON (encoded once, at emit)"),
                ),
                ("key", models.TextField(help_text="the idempotency key it is pushed with")),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("next_try_at", models.DateTimeField(db_index=True)),
                ("last_error", models.TextField(blank=True, default="")),
            ],
            options={
                "verbose_name": "outbox event",
                "db_table": "shahihooks_outbox",
            },
        ),
    ]
