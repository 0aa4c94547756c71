"""The `shahihooks` command line (also `python -m shahihooks`)."""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

import click

from shahihooks.errors import ShahihooksError, VerificationError
from shahihooks.settings import Settings, current

DEFAULT_WORKER_CONCURRENCY = 32


def _settings() -> Settings:
    try:
        return current()
    except ShahihooksError as exc:
        raise click.ClickException(str(exc)) from None


def _out(payload: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(payload, indent=2, default=str) if as_json else text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shahihooks")
def main() -> None:
    """Signed, retried, rate-limited webhooks for Python apps, on Celery and Redis.

    Configuration comes from SHAHIHOOKS_* environment variables (see the README).
    """


@main.command()
@click.argument("url")
@click.option("--event", default="ticket.created", show_default=True, help="Event name.")
@click.option(
    "--secret", "secrets", multiple=True, help="Sign with this (default: SHAHIHOOKS_SECRET)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def test(url: str, event: str, secrets: tuple[str, ...], as_json: bool) -> None:
    """Send one signed test delivery to URL now and print what came back.

    \b
    Example:
      shahihooks test https://myapp.example/webhook --event ticket.created
    """
    from shahihooks.events import registry
    from shahihooks.payload import encode_data, envelope
    from shahihooks.safety import check_target
    from shahihooks.signing import sign_headers
    from shahihooks.transport import post

    settings = _settings()
    try:
        registry.get(event)
        check_target(url, settings)
        keys = secrets or settings.secrets
        if not keys:
            raise click.ClickException("no secret: pass --secret or set SHAHIHOOKS_SECRET")
        delivery = "test_" + uuid.uuid4().hex
        data = {"test": True, "ticket_id": 999, "title": "Test Ticket"}
        body = envelope(delivery, event, int(time.time()), settings.site_url, encode_data(data))
        headers = sign_headers(body, delivery_id=delivery, event=event, secrets=keys)
    except ShahihooksError as exc:
        raise click.ClickException(str(exc)) from None
    response = post(url, body, headers, settings)
    result = {
        "url": url,
        "delivery_id": delivery,
        "status": response.status,
        "ok": response.ok,
        "ms": round(response.duration_s * 1000, 1),
        "error": response.error,
        "response": response.body[:500],
    }
    shown = f"HTTP {response.status}" if response.status is not None else response.error
    text = f"{'✓' if response.ok else '✗'} {shown} in {result['ms']:.0f} ms  ({url})"
    if response.body:
        text += "\n" + response.body[:500]
    _out(result, as_json, text)
    sys.exit(0 if response.ok else 1)


@main.command()
@click.option("--secret", "secrets", multiple=True, required=True, help="Secret (repeatable).")
@click.option("--signature", required=True, help="'sha256=<hex>' or 'v1,<base64>'.")
@click.option("--id", "msg_id", help="webhook-id (needed for a v1 signature).")
@click.option("--timestamp", help="webhook-timestamp (needed for a v1 signature).")
@click.option("--tolerance", default=None, type=int, help="Seconds; default: no age check.")
@click.argument("file", type=click.File("rb"))
def verify(
    secrets: tuple[str, ...],
    signature: str,
    msg_id: str | None,
    timestamp: str | None,
    tolerance: int | None,
    file: Any,
) -> None:
    """Check a saved body FILE (- for stdin) against a signature.

    \b
    Examples:
      shahihooks verify --secret s3cret --signature sha256=ab12... body.json
      shahihooks verify --secret whsec_... --signature v1,K5o... \\
          --id evt_1-ab --timestamp 1700000000 body.json
    """
    from shahihooks.signing import SIGNATURE_HEADER
    from shahihooks.signing import verify as check

    body = file.read()
    if signature.startswith("v1,"):
        if not msg_id or not timestamp:
            raise click.UsageError("a v1 signature needs --id and --timestamp")
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": signature,
        }
    else:
        headers = {SIGNATURE_HEADER: signature}
    try:
        check(body, headers, list(secrets), tolerance_s=tolerance or 10**12)
    except VerificationError as exc:
        click.echo(f"✗ invalid: {exc}")
        sys.exit(1)
    except ShahihooksError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("✓ valid")


@main.command()
@click.argument("event")
@click.option("--data", "data_arg", required=True, help="JSON, or @file to read it from.")
@click.option("--key", default=None, help="Idempotency key: the same key enqueues once.")
@click.option("--json", "as_json", is_flag=True, help="Print the deliveries as JSON.")
def emit(event: str, data_arg: str, key: str | None, as_json: bool) -> None:
    """Emit EVENT; prints one delivery id per endpoint.

    \b
    Example:
      shahihooks emit ticket.created --data '{"ticket_id": 123, "title": "Login issue"}'
    """
    from shahihooks.emit import emit as do_emit

    raw = data_arg
    if raw.startswith("@"):
        with open(raw[1:], encoding="utf-8") as fh:
            raw = fh.read()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    try:
        deliveries = do_emit(event, data, key=key, settings=_settings())
    except ShahihooksError as exc:
        raise click.ClickException(str(exc)) from None
    rows = [{"id": d.id, "url": d.url, "event": d.event} for d in deliveries]
    text = "\n".join(f"{d.id}  {d.url}" for d in deliveries) or "no endpoint subscribes"
    _out(rows, as_json, text)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Start a Celery worker with the recommended pool and settings.

    Extra options go to `celery worker` (e.g. --concurrency 64, -E for Flower events).

    \b
    Example:
      shahihooks worker --loglevel INFO
    """
    from shahihooks.app import app
    from shahihooks.celeryconf import check_celery_config

    settings = _settings()
    try:
        check_celery_config(app.conf, settings)
    except ShahihooksError as exc:
        raise click.ClickException(str(exc)) from None
    argv = ["worker", "-Q", settings.queue]
    extra = list(ctx.args)
    if not any(a.startswith(("--pool", "-P")) for a in extra):
        argv += ["--pool", "threads"]
    if not any(a.startswith(("--concurrency", "-c")) for a in extra):
        argv += ["--concurrency", str(DEFAULT_WORKER_CONCURRENCY)]
    app.worker_main(argv + extra)


if __name__ == "__main__":  # pragma: no cover
    main()
