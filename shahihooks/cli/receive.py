"""The receiving side: `verify` (a saved body against its signature) and `listen` (a local
receiver that verifies and prints each delivery)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from shahihooks.cli.output import paint
from shahihooks.errors import ShahihooksError, VerificationError
from shahihooks.payload import MAX_BODY_BYTES
from shahihooks.settings import Settings, current
from shahihooks.signing import secret_keys


@click.command()
@click.option("--secret", "secrets", multiple=True, required=True, help="Secret (repeatable).")
@click.option("--signature", required=True, help="'sha256=<hex>' or 'v1,<base64>'.")
@click.option("--id", "msg_id", help="webhook-id (needed for a v1 signature).")
@click.option("--timestamp", help="webhook-timestamp (needed for a v1 signature).")
@click.option(
    "--tolerance",
    default=None,
    type=click.IntRange(0),
    help="Seconds the timestamp may be off (0: exactly now); default: no age check.",
)
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
        secret_keys(list(secrets), "--secret")
        check(body, headers, list(secrets), tolerance_s=tolerance)
    except VerificationError as exc:
        click.echo(paint(f"✗ invalid: {exc}"))
        sys.exit(1)
    click.echo(paint("✓ valid"))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", "-p", default=8000, show_default=True, help="0: any free port.")
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    help="Verify with this (repeatable; it shows in `ps`: prefer --secret-env).",
)
@click.option(
    "--secret-env",
    "secret_envs",
    multiple=True,
    metavar="NAME",
    help="Verify with the secret in environment variable NAME (repeatable).",
)
@click.option("--status", default=200, show_default=True, help="Answer this (500 to fail).")
@click.option("--tls-cert", default=None, help="Serve HTTPS with this certificate (PEM).")
@click.option("--tls-key", default=None, help="Its private key (PEM), if not in --tls-cert.")
@click.option(
    "--self-signed",
    "self_signed",
    is_flag=True,
    help="Serve HTTPS with a fresh test CA (needs trustme); prints its CA file.",
)
@click.option("--count", default=0, help="Stop after this many requests (0: never).")
@click.option(
    "--php",
    is_flag=True,
    help="Verify as the page's PHP handler does: HMAC of json_encode(json_decode(body)).",
)
@click.option(
    "--max-body-bytes",
    default=MAX_BODY_BYTES,
    show_default=True,
    type=click.IntRange(1),
    help="Answer 413 to a larger body, unread.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per request.")
def listen(
    host: str,
    port: int,
    secrets: tuple[str, ...],
    secret_envs: tuple[str, ...],
    status: int,
    tls_cert: str | None,
    tls_key: str | None,
    self_signed: bool,
    count: int,
    php: bool,
    max_body_bytes: int,
    as_json: bool,
) -> None:
    """A local receiver that verifies and prints each delivery.

    Deliveries that do not verify get 401, as the page's handlers answer. With --php it
    verifies as the page's PHP handler does (only the php body style passes). Without
    --secret or --secret-env it verifies with SHAHIHOOKS_SECRET (and SHAHIHOOKS_OLD_SECRETS).

    \b
    Examples:
      shahihooks listen --port 8000 --self-signed     # verifies with $SHAHIHOOKS_SECRET
      shahihooks listen --secret-env PARTNER_SECRET   # the secret in $PARTNER_SECRET
      shahihooks listen --status 500      # fail on purpose, to watch retries
    """
    import threading

    from shahihooks.listen import Listener, serve

    if not 0 <= port <= 65535:  # said in one line (the socket would raise OverflowError)
        raise click.ClickException(f"--port {port} is not a port: use 1 to 65535 (0: any free)")
    done = threading.Event()

    def show(heard: Any, n: int) -> None:
        click.echo(json.dumps(heard.as_dict()) if as_json else paint(heard.line(n)))
        if count and n >= count:
            done.set()

    if self_signed:
        tls_cert, tls_key = _self_signed(host)
    listener = Listener(
        _listen_secrets(secrets + _env_secrets(secret_envs)),
        status,
        show,
        php=php,
        max_body_bytes=max_body_bytes,
    )
    try:
        server = serve(listener, host, port, tls_cert, tls_key)
    except OSError as exc:  # the port is taken, or the certificate cannot be read (SSLError)
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    scheme = "https" if tls_cert else "http"
    verifying = (
        "verifying" if listener.secrets else "NOT verifying: no --secret, no SHAHIHOOKS_SECRET"
    )
    click.echo(
        f"listening on {scheme}://{host}:{server.server_address[1]}/ "
        f"({verifying}{' as PHP' if php and listener.secrets else ''}; answering {status})",
        err=True,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        if listener.secrets:
            click.echo(f"{listener.received} received, {listener.verified} verified", err=True)
        else:
            click.echo(f"{listener.received} received, none verified (no secret)", err=True)


def _env_secrets(names: tuple[str, ...]) -> tuple[str, ...]:
    """The secrets in the environment variables `names` (--secret-env): none may be unset."""
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise click.BadParameter(
            f"the environment variable {missing[0]} is not set (or empty)",
            param_hint="--secret-env",
        )
    for name in names:
        secret_keys(os.environ[name], f"the secret in ${name} (--secret-env)")
    return tuple(os.environ[name] for name in names)


def _listen_secrets(given: tuple[str, ...]) -> list[str]:
    """--secret, else SHAHIHOOKS_SECRET; none (and no error) if the settings have none or
    are incomplete: a receiver needs no other setting to start."""
    if given:
        secret_keys(list(given), "--secret")  # too short or not base64: said now, named
        return list(given)
    try:
        return list(current().secrets)
    except ShahihooksError:
        names = ("SHAHIHOOKS_SECRET", "SHAHIHOOKS_OLD_SECRETS")
        try:
            return list(
                Settings.from_env({k: os.environ[k] for k in names if k in os.environ}).secrets
            )
        except ShahihooksError:
            return []


def _self_signed(host: str) -> tuple[str, str]:
    import os
    import tempfile

    try:
        import trustme
    except ImportError:
        raise click.ClickException(
            "--self-signed needs trustme: pip install 'shahihooks[test]'"
        ) from None
    folder = tempfile.mkdtemp(prefix="shahihooks-listen-")
    ca = trustme.CA()
    cert = ca.issue_cert(host, "localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(os.path.join(folder, "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(os.path.join(folder, "server.pem"))
    click.echo(
        f"test CA: {folder}/ca.pem (senders: SHAHIHOOKS_CA_BUNDLE={folder}/ca.pem)", err=True
    )
    return os.path.join(folder, "server.pem"), os.path.join(folder, "server.pem")
