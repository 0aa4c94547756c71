"""The Django app: `"shahihooks.contrib.django"` in INSTALLED_APPS reads `SHAHIHOOKS = {...}`,
ships the outbox table, and gives the project's shahihooks workers the outbox relay."""

from __future__ import annotations

import contextlib
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core import checks
from django.core.signals import setting_changed

from shahihooks.errors import ConfigurationError
from shahihooks.settings import Settings, configure


class ShahihooksConfig(AppConfig):
    name = "shahihooks.contrib.django"
    label = "shahihooks"
    verbose_name = "shahihooks"

    def ready(self) -> None:
        from shahihooks.app import app
        from shahihooks.contrib.django import signals  # noqa: F401 - ops events send them
        from shahihooks.contrib.django.outbox import RelayStep

        # a bad dict: `manage.py check` (and runserver, migrate) report it, and using
        # shahihooks raises it (the CLI in one line); the project still starts
        with contextlib.suppress(ConfigurationError):
            configure(settings_from(getattr(django_settings, "SHAHIHOOKS", None)))
        checks.register(check_settings, "shahihooks")
        # override_settings(SHAHIHOOKS=...) in tests reconfigures shahihooks, and back
        setting_changed.connect(_setting_changed, dispatch_uid="shahihooks.contrib.django")
        app.steps["worker"].add(RelayStep)


def settings_from(values: Any) -> Settings:
    """The project's SHAHIHOOKS dict; without one, the environment's SHAHIHOOKS_* apply."""
    if values is None:
        return Settings.from_env()
    return Settings.from_mapping(values, 'settings.SHAHIHOOKS["{}"]')


def check_settings(app_configs: Any = None, **_: Any) -> list[checks.CheckMessage]:
    """A bad SHAHIHOOKS dict as a Django system check error (runserver, migrate, check)."""
    try:
        settings_from(getattr(django_settings, "SHAHIHOOKS", None))
    except ConfigurationError as exc:
        return [checks.Error(str(exc), id="shahihooks.E001")]
    return []


def _setting_changed(setting: str, value: Any, **_: Any) -> None:
    if setting == "SHAHIHOOKS":
        configure(settings_from(value))
