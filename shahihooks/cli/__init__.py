"""The `shahihooks` command line (also `python -m shahihooks`): the top-level group `main`,
its commands in one module per group."""

from __future__ import annotations

import os
import sys

import click

from shahihooks.cli import dead, doctor, endpoints, log, processes, receive, send
from shahihooks.cli.commands import Commands, without_options
from shahihooks.cli.output import paint, table

__all__ = ["Commands", "main", "paint", "table", "without_options"]


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shahihooks")
def main() -> None:
    """Signed, retried, rate-limited webhooks for Python apps, on Celery and Redis.

    Configuration comes from SHAHIHOOKS_* environment variables (see the README); with
    DJANGO_SETTINGS_MODULE set, from the project's SHAHIHOOKS dict.
    """
    if os.environ.get("DJANGO_SETTINGS_MODULE") and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python manage.py` and Celery's Django fixup do


for _command in (
    send.test,
    receive.verify,
    send.emit,
    processes.worker,
    processes.flower,
    log.stats,
    log.log,
    dead.dead,
    endpoints.endpoints,
    receive.listen,
    processes.dashboard,
    doctor.doctor,
):
    main.add_command(_command)
