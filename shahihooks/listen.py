"""A local receiver that verifies and prints deliveries (instead of webhook.site/RequestBin).

It answers 401 to a delivery that does not verify (as the page's handlers do), and
`--status` to the others, so `--status 500` makes it fail on purpose to watch retries.
With `php`, it verifies as the page's PHP handler does (`bodystyle.verify_like_php`).
"""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shahihooks.bodystyle import verify_like_php
from shahihooks.errors import VerificationError
from shahihooks.signing import verify


@dataclass
class Heard:
    """One request the listener received."""

    valid: bool | None  # None: not verified (the listener has no secret)
    event: str
    delivery_id: str
    attempt: str
    body: bytes
    reason: str = ""

    def line(self, n: int) -> str:
        mark = "?" if self.valid is None else ("✓" if self.valid else "✗")
        short = self.body.decode("utf-8", "replace")
        short = short if len(short) <= 100 else short[:97] + "..."
        tail = f"  {self.reason}" if self.reason else ""
        return (
            f"[{n}] {mark} {self.event}  {self.delivery_id}  attempt {self.attempt}  {short}{tail}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "event": self.event,
            "id": self.delivery_id,
            "attempt": self.attempt,
            "body": self.body.decode("utf-8", "replace"),
            "reason": self.reason,
        }


@dataclass
class Listener:
    secrets: list[str]
    status: int = 200
    on_heard: Callable[[Heard, int], None] = lambda heard, n: None
    heard: list[Heard] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    php: bool = False  # verify as the page's PHP handler does

    def handle(self, body: bytes, headers: dict[str, str]) -> int:
        lower = {k.lower(): v for k, v in headers.items()}
        heard = Heard(
            None,
            lower.get("x-shahi-assist-event", "?"),
            lower.get("webhook-id") or lower.get("x-shahi-assist-delivery", "?"),
            lower.get("x-shahi-assist-attempt", "?"),
            body,
        )
        status = self.status
        if self.secrets:
            try:
                (verify_like_php if self.php else verify)(body, headers, self.secrets)
                heard.valid = True
            except VerificationError as exc:
                heard.valid, heard.reason, status = False, str(exc), 401
        else:
            heard.reason = "(not verified: no --secret)"
        with self.lock:
            self.heard.append(heard)
            n = len(self.heard)
        self.on_heard(heard, n)
        return status


def serve(
    listener: Listener,
    host: str,
    port: int,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> http.server.ThreadingHTTPServer:
    """Bind and return the server (call `serve_forever()` on it)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            status = listener.handle(body, dict(self.headers.items()))
            reply = json.dumps({"status": "success" if status < 300 else "error"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = http.server.ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    if certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server
