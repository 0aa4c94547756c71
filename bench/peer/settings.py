"""A minimal Django project for django-webhook as its README sets it up, on SQLite."""

import os

SECRET_KEY = "bench-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django_webhook", "bench.peer"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_PEER_DB", "peer.sqlite3"),
        # several worker processes write the same file: wait for the lock, as one would
        "OPTIONS": {"timeout": 30},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DJANGO_WEBHOOK = {"MODELS": ["peer.Ticket"]}
