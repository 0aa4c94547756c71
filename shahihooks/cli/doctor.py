"""`shahihooks doctor`, and the loss of the state that it and `stats` report."""

from __future__ import annotations

import sys

import click

from shahihooks.cli.output import paint, print_result
from shahihooks.settings import Settings, current


@click.command()
@click.option("--no-worker-check", is_flag=True, help="Skip pinging workers.")
@click.option("--ack-lost", is_flag=True, help="Forget a reported loss of the state first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(no_worker_check: bool, ack_lost: bool, as_json: bool) -> None:
    """Run the page's troubleshooting checklist against the live configuration.

    Webhooks enabled, events selected, secret set, Redis reachable, a worker alive, and
    for each endpoint: https, public address, TCP, TLS certificate (and expiry), recent
    failures. Exits 1 if anything is wrong.

    \b
    Example:
      shahihooks doctor
    """
    from shahihooks import doctor as checklist

    if ack_lost:
        _acknowledge_loss()
    checks = checklist.run(current(), ping_workers=not no_worker_check)
    print_result([c.as_dict() for c in checks], as_json, "\n".join(c.line() for c in checks))
    sys.exit(0 if all(c.ok for c in checks) else 1)


def _acknowledge_loss() -> None:
    from shahihooks import shards
    from shahihooks.epoch import acknowledge

    states = shards.shards(current())
    found = sum(bool(acknowledge(state.client, state.keys)) for state in states)
    click.echo("loss of the state acknowledged" if found else "no loss was reported", err=True)


def warn_if_lost(settings: Settings) -> None:
    """A loss of the state, on stderr (stdout stays exact for --json)."""
    from shahihooks.epoch import first_loss

    loss = first_loss(settings)
    if loss is not None:
        click.echo(paint(f"✗ {loss.text()} (shahihooks doctor)"), err=True)
