"""The peer's Celery app: `celery -A bench.peer.worker worker` (django-webhook's tasks)."""

import os

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peer.settings")
app = Celery("peer", broker=os.environ["BENCH_BROKER"])
app.conf.update(task_ignore_result=True, task_default_queue="peer", worker_hijack_root_logger=False)
django.setup()
import django_webhook.tasks  # noqa: E402, F401 - registers fire_webhook on this app
