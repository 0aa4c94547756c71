"""The Celery app, wired in one place: shahihooks' settings (celeryconf.py), then
CELERY_CONFIG_MODULE's; the task module; the worker's steps (worker.py), by name.

Nothing is read at import: the configuration is loaded the first time Celery needs it, so
`import shahihooks` never fails on a bad environment, and `configure()` (Django, Flask,
tests) changes it later. Nor is any worker code loaded: a worker imports the task module
and the steps as it starts.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from celery import Celery

from shahihooks.celeryconf import celery_config
from shahihooks.publish import Publisher
from shahihooks.settings import Settings, current, on_configure


def user_config() -> dict[str, Any]:
    """The settings of the module named by CELERY_CONFIG_MODULE, which win over ours."""
    name = os.environ.get("CELERY_CONFIG_MODULE")
    if not name:
        return {}
    module = importlib.import_module(name)
    return {k: v for k, v in vars(module).items() if k.islower() and not k.startswith("_")}


def create_app(settings: Settings | None = None) -> Celery:
    celery = Celery("shahihooks", set_as_current=False, include=["shahihooks.tasks"])
    celery.add_defaults(lambda: {**celery_config(settings or current()), **user_config()})
    return celery


app = create_app()
publisher = Publisher(app)


def _reconfigure(settings: Settings) -> None:
    before = (app.conf.broker_url, app.conf.broker_transport_options)
    app.conf.update({**celery_config(settings), **user_config()})
    publisher.forget()
    if (app.conf.broker_url, app.conf.broker_transport_options) != before:
        _forget_broker_connections()


def _forget_broker_connections() -> None:
    """Celery keeps the pools it publishes through (of connections, of producers) for the
    broker it first met: another broker configured, it takes them anew, as after a fork.
    Not closed: kombu keeps them, per broker, for whoever meets that broker again."""
    vars(app)["_pool"] = None
    amqp = vars(app).get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


on_configure(_reconfigure)

# Celery's blueprints load steps named "module:Class" as a worker starts (the test worker
# of celery.contrib.testing too)
app.steps["worker"].add("shahihooks.worker:CheckStep")
app.steps["worker"].add("shahihooks.worker:MoverStep")
app.steps["consumer"].add("shahihooks.worker:EventBatches")
app.steps["consumer"].add("shahihooks.worker:HeldMessages")
