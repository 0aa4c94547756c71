"""The Celery app, wired in one place: shahihooks' settings (celeryconf.py), then
CELERY_CONFIG_MODULE's; the startup check; the mover in every worker; the task module.

Nothing is read at import: the configuration is loaded the first time Celery needs it, so
`import shahihooks` never fails on a bad environment, and `configure()` (Django, Flask,
tests) changes it later.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from typing import Any

from celery import Celery, bootsteps, signals

from shahihooks.celeryconf import celery_config, check_celery_config, is_redis
from shahihooks.connections import (
    OUTAGES,
    persistence_warning,
    redis_client,
    refuse_cluster,
    server_facts,
)
from shahihooks.mover import Mover
from shahihooks.publish import Publisher
from shahihooks.settings import Settings, current, on_configure

logger = logging.getLogger("shahihooks.worker")


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
    app.conf.update({**celery_config(settings), **user_config()})


on_configure(_reconfigure)


def check_worker(settings: Settings) -> None:
    """Refuse to start a worker that could lose deliveries; warn about what a restart loses."""
    check_celery_config(app.conf, settings)
    servers = [("state Redis", settings.redis_url)]
    if is_redis(publisher.broker_url) and publisher.broker_url != settings.redis_url:
        servers.append(("broker Redis", publisher.broker_url))
    for what, url in servers:
        try:
            facts = server_facts(redis_client(url, settings.sentinel_master))
        except OUTAGES as exc:  # the worker waits for it like for the broker
            logger.warning("could not check the %s yet (%s)", what, type(exc).__name__)
            continue
        refuse_cluster(facts, what, url)
        warning = persistence_warning(facts, what, url)
        if warning:
            logger.warning("%s", warning)


@signals.worker_init.connect
def _check_on_worker_start(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "app", None) is app:
        check_worker(current())


class MoverStep(bootsteps.StartStopStep):
    """The mover runs in every worker: started with it, stopped with it."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.stop_mover: threading.Event | None = None

    def start(self, parent: Any) -> None:
        self.stop_mover = Mover(publisher, current).start()

    def stop(self, parent: Any) -> None:
        if self.stop_mover is not None:
            self.stop_mover.set()


app.steps["worker"].add(MoverStep)
