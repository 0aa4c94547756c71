"""The page's troubleshooting checklist, run against the live configuration.

Each check returns a line: passed or not, what was found, and what to do about it. An
endpoint whose recent attempts got 401 is sent a probe delivery in each body style, to say
which one it verifies (`probe.which_style`).
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from urllib.parse import urlsplit

from shahihooks import shards, signers
from shahihooks.checks import Check, lost_check, redis_check, server_checks, state_checks
from shahihooks.connections import state_redis
from shahihooks.endpoints import Endpoint, EndpointStore
from shahihooks.errors import ShahihooksError, UnsafeTargetError
from shahihooks.health import EndpointHealth, endpoint_health
from shahihooks.keys import url_tag
from shahihooks.safety import check_target, redact_url
from shahihooks.settings import Settings
from shahihooks.signing import fingerprint
from shahihooks.state import Waiting
from shahihooks.stats import read_log
from shahihooks.transport import open_socket

_CONNECT_TIMEOUT_S = 5.0
_EXPIRY_WARNING_DAYS = 14


def run(settings: Settings, ping_workers: bool = True) -> list[Check]:
    checks = [
        Check(
            settings.enabled,
            "webhooks enabled",
            "" if settings.enabled else "set SHAHIHOOKS_ENABLED=1",
        ),
        Check(
            True,
            "events selected: "
            + ("all" if settings.events is None else ", ".join(settings.events)),
        ),
        Check(
            bool(settings.secret),
            "secret set" if settings.secret else "no global secret",
            "" if settings.secret else "set SHAHIHOOKS_SECRET (or give each endpoint its own)",
        ),
    ]
    redis_ok = redis_check(settings)
    checks.append(redis_ok)
    if redis_ok.ok:
        servers = server_checks(settings)
        checks += servers
        if any("Redis Cluster" in c.what for c in servers):
            redis_ok = Check(False, "")  # nothing more can be read from it
        else:
            checks.append(lost_check(settings))
    if redis_ok.ok:
        checks += state_checks(settings)
    if ping_workers:
        checks.append(_worker_check(settings))
    if redis_ok.ok and settings.secret:
        checks += _signer_check(settings)
    endpoints = [Endpoint(u, body_style=settings.body_style) for u in settings.urls]
    if redis_ok.ok:
        stored = EndpointStore(state_redis(settings), settings).all()
        known = {e.url for e in endpoints}
        endpoints += [e for e in stored if e.url not in known]
    if not endpoints:
        checks.append(
            Check(
                False,
                "no endpoint configured",
                "set SHAHIHOOKS_URLS or use `shahihooks endpoints add URL`",
            )
        )
    shared = shared_secret_check(endpoints, settings)
    if shared is not None:
        checks.append(shared)
    recent = read_log(settings, limit=1000) if redis_ok.ok else []
    states = shards.shards(settings) if redis_ok.ok else ()
    waiting = {w.tag: w for state in states for w in state.waiting()}
    healths = endpoint_health(settings, [e.url for e in endpoints]) if redis_ok.ok else []
    for i, endpoint in enumerate(endpoints):
        if healths:
            checks.append(health_check(healths[i]))
        checks += check_endpoint(endpoint, settings, recent)
        if url_tag(endpoint.url) in waiting:
            checks.append(backlog_check(endpoint, settings, waiting[url_tag(endpoint.url)]))
    return checks


def health_check(health: EndpointHealth) -> Check:
    """The endpoint's health as every worker sees it: its circuit, disabled, its limit."""
    what = f"{health.url}: {health.describe()}"
    if health.state == "disabled":
        return Check(
            False, what, f"fix it, then: shahihooks endpoints enable {health.url} --recover"
        )
    if health.state == "open":
        return Check(
            False,
            f"{what}; last error: {health.last_error}",
            "nothing is attempted but a probe now and then; deliveries wait in its backlog "
            "without spending their retries",
        )
    return Check(True, what)


def shared_secret_check(endpoints: list[Endpoint], settings: Settings) -> Check | None:
    """Endpoints on different hosts that all sign with the global secret: each receiver
    holds what it takes to forge deliveries that the others accept. None if no such two."""
    if not settings.secrets:
        return None
    sharing = [e for e in endpoints if not e.secrets]
    hosts = sorted({(urlsplit(e.url).hostname or "").rstrip(".") for e in sharing})
    if len(hosts) < 2:
        return None
    named = ", ".join(hosts[:5]) + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "")
    return Check(
        False,
        f"{len(sharing)} endpoints on {len(hosts)} hosts ({named}) share the global secret: "
        "each of their receivers can sign deliveries that the others accept",
        "give each third-party endpoint its own secret: "
        "shahihooks endpoints add URL --secret ... (and that receiver the same secret)",
    )


def backlog_check(endpoint: Endpoint, settings: Settings, waiting: Waiting) -> Check:
    """A backlog deeper than one window's limit grows: the URL gets more than its limit."""
    shown = redact_url(endpoint.url)
    limit = settings.rate_limit if endpoint.rate_limit is None else endpoint.rate_limit
    window = f"{settings.rate_window_s:g} s"
    oldest = "" if waiting.oldest_s is None else f", the oldest for {waiting.oldest_s:.0f} s"
    what = f"{shown}: {waiting.backlog} deliveries wait in its backlog{oldest}"
    if limit <= 0 or waiting.backlog <= limit:
        return Check(True, f"{what} (limit {limit} per {window})")
    return Check(
        False,
        f"{what}: more than its limit of {limit} per {window} can release, so it is growing "
        "(its traffic is above its limit)",
        f"raise its limit: shahihooks endpoints add {shown} --rate-limit N "
        "(or SHAHIHOOKS_RATE_LIMIT for every URL)",
    )


def _signer_check(settings: Settings) -> list[Check]:
    """Does a running worker sign with this app's secret? One that does not dead-letters the
    app's deliveries (it never signs them with its own): two Flask apps with different
    secrets on one worker, a worker started without the app's settings."""
    alive = signers.alive(settings)
    mine = fingerprint(settings.secrets)
    if not alive:
        return []  # no worker has said yet: the worker check speaks of it
    if mine in alive:
        return [Check(True, f"a running worker signs with this app's secret ({mine})")]
    return [
        Check(
            False,
            f"no running worker signs with this app's secret (fingerprint {mine}; the workers "
            f"sign with {', '.join(sorted(alive))}): they dead-letter its deliveries rather "
            "than sign them with another secret",
            "run a worker with this app's settings (Flask: `flask --app <this app> shahihooks "
            "worker`; Django: `python manage.py shahihooks worker`), then replay them",
        )
    ]


def _worker_check(settings: Settings) -> Check:
    from shahihooks.app import app

    try:
        replies = app.control.ping(timeout=1.0)
    except Exception as exc:
        return Check(False, f"cannot ask workers: {exc}", "check SHAHIHOOKS_BROKER_URL")
    if not replies:
        return Check(False, "no worker answers", "start one: shahihooks worker")
    return Check(True, f"{len(replies)} worker(s) alive")


def check_endpoint(
    endpoint: Endpoint, settings: Settings, recent: list[dict[str, str]]
) -> list[Check]:
    url = endpoint.url
    shown = redact_url(url)
    out: list[Check] = []
    try:
        check_target(url, settings)
    except ShahihooksError as exc:
        return [*out, Check(False, f"{shown}: {exc}", "use a public https:// URL")]
    parts = urlsplit(url)
    if parts.scheme == "https":
        out.append(Check(True, f"{shown}: https, resolves to a public (or allowed) address"))
    else:
        out.append(Check(True, f"{shown}: resolves to a public (or allowed) address"))
        out.append(
            Check(
                False,
                f"{shown}: plain http, not https: sent unencrypted "
                f"(allowed by {settings.setting_name('ALLOW_HTTP')})",
                "use an https:// URL outside local development",
            )
        )
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        # the deliveries' own guarded path: resolve, vet, connect only to a vetted address
        sock = open_socket(host, port, settings.allow_networks, _CONNECT_TIMEOUT_S)
    except UnsafeTargetError as exc:
        return [*out, Check(False, f"{shown}: TCP connect refused: {exc}", "use a public URL")]
    except OSError as exc:
        return [
            *out,
            Check(
                False,
                f"{shown}: TCP connect to {host}:{port} failed: {exc}",
                "check the firewall and that the receiver is running",
            ),
        ]
    with sock:
        out.append(Check(True, f"{shown}: TCP connects to {host}:{port}"))
        if parts.scheme == "https":
            out.append(_tls_check(sock, host, shown, settings))
    failures = [r for r in recent if r.get("url") == shown and r.get("outcome") != "delivered"]
    tried = [r for r in recent if r.get("url") == shown]
    if failures:
        last = failures[-1]
        out.append(
            Check(
                False,
                f"{shown}: {len(failures)} of the last {len(tried)} attempts failed "
                f"(last: {last.get('error')})",
                f"shahihooks log --url {shown} --failed",
            )
        )
    elif tried:
        out.append(Check(True, f"{shown}: last {len(tried)} attempts delivered"))
    if any(r.get("status") == "401" for r in failures):
        out.append(_style_check(endpoint, settings))
    return out


def _style_check(endpoint: Endpoint, settings: Settings) -> Check:
    from shahihooks.probe import which_style

    shown = redact_url(endpoint.url)
    secrets = endpoint.secrets or settings.secrets
    if not secrets:
        return Check(False, f"{shown}: answers 401, and no secret to probe it with")
    report = which_style(endpoint.url, "ticket.created", secrets, settings)
    ok = endpoint.body_style in report.verified
    what = f"{shown}: got 401 in the {endpoint.body_style} body style; probe: {report.text()}"
    return Check(ok, what, "" if ok else report.fix(shown))


def _tls_check(sock: socket.socket, host: str, shown: str, settings: Settings) -> Check:
    context = ssl.create_default_context(cafile=settings.ca_bundle or None)
    try:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            cert = tls.getpeercert() or {}
    except ssl.SSLError as exc:
        return Check(
            False,
            f"{shown}: TLS certificate invalid: {exc.reason or exc}",
            "fix the certificate (Let's Encrypt), or SHAHIHOOKS_CA_BUNDLE for an internal CA",
        )
    not_after = cert.get("notAfter")
    if not isinstance(not_after, str):
        return Check(True, f"{shown}: TLS certificate valid")
    expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), dt.UTC)
    days = (expires - dt.datetime.now(dt.UTC)).days
    if days < _EXPIRY_WARNING_DAYS:
        return Check(
            False,
            f"{shown}: TLS certificate expires in {days} days ({expires:%Y-%m-%d})",
            "renew the certificate",
        )
    return Check(True, f"{shown}: TLS certificate valid until {expires:%Y-%m-%d} ({days} days)")
