"""A small Django project for the tests: sqlite on disk, the shahihooks app, a Ticket model."""

import json
import os
import tempfile

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["testserver", "127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "shahihooks.contrib.django",
    "tests.django_project.tickets",
]
ROOT_URLCONF = "tests.django_project.urls"
_DB = os.path.join(tempfile.gettempdir(), f"shahihooks-django-{os.getpid()}.sqlite3")
# the outbox tests give the project's worker (a subprocess) the tests' own database
_DB = os.environ.get("SHAHIHOOKS_TEST_DJANGO_DB", _DB)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _DB,
        "TEST": {"NAME": _DB + ".test"},
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
SHAHIHOOKS = {
    "REDIS_URL": os.environ.get("SHAHIHOOKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "SECRET": "test-secret-0123456789",
    "ALLOW_NETWORKS": "127.0.0.0/8",
}
if os.environ.get("SHAHIHOOKS_TEST_DJANGO"):  # a test's own dict, for its subprocesses
    SHAHIHOOKS = json.loads(os.environ["SHAHIHOOKS_TEST_DJANGO"])
