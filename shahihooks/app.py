"""The Celery app: shahihooks' settings (celeryconf.py), then CELERY_CONFIG_MODULE's."""

from __future__ import annotations

import importlib
import os
from typing import Any

from celery import Celery, signals

from shahihooks.celeryconf import celery_config, check_celery_config
from shahihooks.settings import Settings, current, on_configure


def user_config() -> dict[str, Any]:
    """The settings of the module named by CELERY_CONFIG_MODULE, which win over ours."""
    name = os.environ.get("CELERY_CONFIG_MODULE")
    if not name:
        return {}
    module = importlib.import_module(name)
    return {k: v for k, v in vars(module).items() if k.islower() and not k.startswith("_")}


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or current()
    celery = Celery("shahihooks", set_as_current=False)
    celery.conf.update({**celery_config(settings), **user_config()})
    return celery


app = create_app()


def _reconfigure(settings: Settings) -> None:
    app.conf.update({**celery_config(settings), **user_config()})


on_configure(_reconfigure)


@signals.worker_init.connect
def _check_on_worker_start(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "app", None) is app:
        check_celery_config(app.conf, current())


@signals.worker_ready.connect
def _start_sweeper(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "app", None) is app:
        from shahihooks.sweep import start_sweeper

        start_sweeper()


import shahihooks.tasks  # noqa: E402,F401  - registers shahihooks.deliver on the app
