"""The Django app: `"shahihooks.contrib.django"` in INSTALLED_APPS reads `SHAHIHOOKS = {...}`."""

from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings as django_settings

from shahihooks.settings import Settings, configure


class ShahihooksConfig(AppConfig):
    name = "shahihooks.contrib.django"
    label = "shahihooks"
    verbose_name = "shahihooks"

    def ready(self) -> None:
        values = getattr(django_settings, "SHAHIHOOKS", {})
        configure(Settings.from_mapping(values, 'settings.SHAHIHOOKS["{}"]'))
