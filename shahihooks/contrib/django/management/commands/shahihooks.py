"""`python manage.py shahihooks <command>`: every `shahihooks` command with the project's
settings (its SHAHIHOOKS dict), and `outbox`: the events waiting in the outbox table."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import click
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from shahihooks.cli import Commands, main, paint, table, without_options

# Django's own options, which `manage.py` has already applied before the command runs
_DJANGO_OPTIONS = ("--settings", "--pythonpath")


@click.command("outbox")
@click.option("--relay", is_flag=True, help="Push every waiting event to Redis now.")
@click.option(
    "--discard",
    "discard",
    multiple=True,
    metavar="ID",
    help="Delete a waiting event that can never be sent (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def outbox(relay: bool, discard: tuple[str, ...], as_json: bool) -> None:
    """Events committed while Redis was unreachable, waiting in the outbox table.

    The project's worker pushes them within about a second of Redis answering again;
    --relay pushes them from here, now.

    \b
    Examples:
      python manage.py shahihooks outbox
      python manage.py shahihooks outbox --relay
    """
    from shahihooks.contrib.django import outbox as box
    from shahihooks.contrib.django.models import OutboxEvent

    if discard:
        gone = sum(
            OutboxEvent.objects.using(alias).filter(pk__in=discard).delete()[0]
            for alias in box.aliases()
        )
        click.echo(f"discarded {gone} event(s)", err=True)
    if relay:
        done = box.relay(everything=True)
        note = " (Redis is unreachable)" if done.outage else ""
        click.echo(f"pushed {done.pushed}, failed {done.failed}{note}", err=True)
    rows = [
        {
            "id": str(row.pk),
            "database": alias,
            "created_at": row.created_at.isoformat(),
            "event": row.event,
            "attempts": row.attempts,
            "next_try_at": row.next_try_at.isoformat(),
            "last_error": row.last_error,
        }
        for alias in box.aliases()
        for row in OutboxEvent.objects.using(alias).order_by("created_at")
    ]
    now = timezone.now()
    text = table(
        ["ID", "AGE", "EVENT", "ATTEMPTS", "LAST ERROR"],
        [
            (r["id"], _age(now, r["created_at"]), r["event"], r["attempts"], r["last_error"])
            for r in rows
        ],
        empty="the outbox is empty: every event has been pushed to Redis",
    )
    click.echo(json.dumps(rows, indent=2) if as_json else paint(text))


def _age(now: Any, iso: str) -> str:
    from datetime import datetime

    seconds = int((now - datetime.fromisoformat(iso)).total_seconds())
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"


commands = Commands(
    name="shahihooks",
    commands={**main.commands, "outbox": outbox},
    help=(
        "shahihooks with this project's settings (its SHAHIHOOKS dict). Every `shahihooks` "
        "command, and `outbox`."
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Command(BaseCommand):
    help = "shahihooks commands with the project's settings: worker, doctor, log, outbox, ..."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER)

    def run_from_argv(self, argv: list[str]) -> None:
        """`manage.py shahihooks ...`: the arguments go to the shahihooks CLI as they are."""
        prog = f"{os.path.basename(argv[0])} {argv[1]}"
        commands.main(args=without_options(argv[2:], _DJANGO_OPTIONS), prog_name=prog)

    def handle(self, *args: str, **options: Any) -> None:
        """`call_command("shahihooks", "doctor", "--json")`."""
        try:
            commands.main(args=list(args), prog_name="shahihooks", standalone_mode=False)
        except click.ClickException as exc:
            raise CommandError(exc.format_message()) from None
        except SystemExit as exc:
            if exc.code:
                raise CommandError(f"shahihooks {' '.join(args)}: exit status {exc.code}") from None
