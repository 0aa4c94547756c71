"""The dashboard's HTTP server (the standard library's): routes, basic auth, CSRF tokens.

GET  /                          endpoints table and the deployment's queues
GET  /endpoints/<tag>           one endpoint: health, hourly charts, recent attempts
GET  /dead                      dead letters, with replay and `enable --recover` buttons
GET  /events                    the event catalogue
GET  /metrics                   Prometheus text format (shahihooks.metrics)
POST /dead/replay               id, csrf: replay one dead letter
POST /endpoints/<tag>/enable    csrf, recover: enable the endpoint and replay its dead letters
"""

from __future__ import annotations

import base64
import binascii
import hmac
import http.server
import ipaddress
import logging
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from shahihooks import dead, health
from shahihooks.connections import OUTAGES
from shahihooks.dashboard import data, pages
from shahihooks.errors import ConfigurationError
from shahihooks.events import registry
from shahihooks.settings import Settings
from shahihooks.stats import read_log

logger = logging.getLogger("shahihooks.dashboard")

MAX_FORM_BYTES = 4096
SECURITY_HEADERS = {
    # nothing is loaded from anywhere: no script, no remote style, image or font
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback one."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(a[4][0]).is_loopback for a in found)


def check_bind(host: str, auth: str) -> None:
    """Refuse to serve on an address others can reach unless basic auth is set."""
    if not auth and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve the dashboard on {host!r} without a password: it shows every "
            "endpoint and can replay dead letters. Set SHAHIHOOKS_DASHBOARD_AUTH=user:password, "
            "or serve on 127.0.0.1 (behind your own proxy)"
        )


@dataclass(frozen=True)
class Config:
    settings: Settings
    refresh_s: int
    csrf: str  # this process's token: every form carries it, every POST must


class DashboardServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    config: Config


def serve(settings: Settings, host: str, port: int, refresh_s: int = 10) -> DashboardServer:
    """A bound server (call `serve_forever`); refuses a reachable address without auth."""
    check_bind(host, settings.dashboard_auth)
    server = DashboardServer((host, port), Handler)
    server.config = Config(settings, refresh_s, secrets.token_urlsafe(32))
    return server


class Handler(http.server.BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "shahihooks-dashboard"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def _guarded(self, handle: Any) -> None:
        if not self._authorised():
            self._send(401, b"authentication required\n", "text/plain", realm=True)
            return
        try:
            handle()
        except OUTAGES as exc:
            logger.warning("dashboard: Redis unreachable: %s", exc)
            body = pages.message("Redis unreachable", f"Redis is unreachable ({exc})")
            self._send(503, body.encode(), "text/html")
        except Exception as exc:
            logger.exception("dashboard: %s %s failed", self.command, self.path)
            body = pages.message("Error", f"{type(exc).__name__}: {exc}")
            self._send(500, body.encode(), "text/html")

    def _authorised(self) -> bool:
        expected = self.server.config.settings.dashboard_auth
        if not expected:
            return True
        given = self.headers.get("Authorization", "")
        if not given.startswith("Basic "):
            return False
        try:
            pair = base64.b64decode(given[6:], validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(pair, expected.encode("utf-8"))

    def _get(self) -> None:
        config = self.server.config
        path = urlsplit(self.path).path
        settings, refresh = config.settings, config.refresh_s
        if path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST

            from shahihooks.metrics import exposition

            self._send(200, exposition(settings), CONTENT_TYPE_LATEST)
        elif path == "/":
            self._html(pages.index(data.overview(settings), refresh))
        elif path.startswith("/endpoints/"):
            self._endpoint(path.removeprefix("/endpoints/"))
        elif path == "/dead":
            total, letters = data.dead_letters(settings)
            tags = data.dead_tags(settings, [d.id for d in letters])
            note = parse_qs(urlsplit(self.path).query).get("note", [""])[0]
            self._html(pages.dead_page(total, letters, tags, config.csrf, note, refresh))
        elif path == "/events":
            self._html(pages.events_page(registry, refresh))
        else:
            self._html(pages.message("Not found", f"nothing at {path}"), 404)

    def _endpoint(self, tag: str) -> None:
        config = self.server.config
        row = data.find(config.settings, tag)
        if row is None:
            self._html(pages.message("Not found", f"no endpoint with tag {tag}"), 404)
            return
        now = time.time()
        series = data.hourly_series(config.settings, row.health.url, now)
        log = read_log(config.settings, limit=50, url=row.health.url)
        self._html(pages.endpoint(row, series, log, config.csrf, config.refresh_s, now))

    def _post(self) -> None:
        form = self._form()
        if form is None:
            return
        if not hmac.compare_digest(form.get("csrf", ""), self.server.config.csrf):
            self._html(pages.message("Refused", "missing or wrong CSRF token: reload"), 403)
            return
        path = urlsplit(self.path).path
        if path == "/dead/replay":
            self._replay(form.get("id", ""))
        elif path.startswith("/endpoints/") and path.endswith("/enable"):
            self._enable(path.removeprefix("/endpoints/").removesuffix("/enable"), form)
        else:
            self._html(pages.message("Not found", f"nothing to post at {path}"), 404)

    def _form(self) -> dict[str, str] | None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_FORM_BYTES:
            self._html(pages.message("Refused", "a form of 0 to 4096 bytes is expected"), 400)
            return None
        raw = self.rfile.read(length).decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(raw).items()}

    def _replay(self, delivery_id: str) -> None:
        ok = dead.replay(delivery_id, self.server.config.settings)
        note = f"replayed {delivery_id}" if ok else f"{delivery_id} was not replayed (gone?)"
        logger.info("dashboard: %s", note)
        self._redirect(f"/dead?note={quote(note)}")

    def _enable(self, tag: str, form: dict[str, str]) -> None:
        settings = self.server.config.settings
        url = data.url_of_tag(settings, tag)
        if url is None:
            self._html(pages.message("Not found", f"no endpoint with tag {tag}"), 404)
            return
        replayed = health.enable(settings, url, recover=form.get("recover") == "1")
        note = f"enabled; {replayed} dead letter(s) replayed"
        logger.info("dashboard: endpoint %s %s", tag, note)
        self._redirect(f"/dead?note={quote(note)}")

    def _html(self, text: str, status: int = 200) -> None:
        self._send(status, text.encode("utf-8"), "text/html; charset=utf-8")

    def _redirect(self, location: str) -> None:
        self.send_response(303)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str, realm: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if realm:
            self.send_header("WWW-Authenticate", 'Basic realm="shahihooks", charset="UTF-8"')
        self.end_headers()
        self.wfile.write(body)
