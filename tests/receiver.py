"""A real HTTPS receiver on 127.0.0.1 for tests, with `trustme` certificates.

Each path answers by a rule (`receiver.rule("/fail", lambda n: 500)`): a function of how
many requests that path has had (1-based) returning a status, or (status, headers, body).
Every request is recorded with its exact body and headers.
"""

from __future__ import annotations

import http.server
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trustme

Answer = int | tuple[int, dict[str, str], bytes]
Rule = Callable[[int], Answer]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int = 0

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class Receiver:
    ca: trustme.CA
    ca_path: str
    rules: dict[str, Rule] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    server: Any = None

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def rule(self, path: str, rule: Rule) -> None:
        self.rules[path] = rule

    def requests_to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 20.0) -> list[Received]:
        """Poll until `path` has had `count` requests, or fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.requests_to(path)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{path}: {len(self.requests_to(path))} requests, wanted {count}")

    def clear(self) -> None:
        with self.lock:
            self.received.clear()
            self.rules.clear()


class _QuietServer(http.server.ThreadingHTTPServer):
    """A connection that breaks (a worker's deadline or a reset cut it) is kept as an error,
    not printed: printed, it lands in whatever captures stderr at that moment, such as a
    CliRunner whose output a test reads as JSON."""

    errors: list[BaseException | None]

    def handle_error(self, request: object, client_address: object) -> None:
        self.errors = [*getattr(self, "errors", [])[-99:], sys.exc_info()[1]]


def start_receiver(ca: trustme.CA, ca_path: str, hostnames: tuple[str, ...]) -> Receiver:
    receiver = Receiver(ca, ca_path)
    counts: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            path = self.path
            received = Received(
                path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
            )
            with receiver.lock:
                receiver.received.append(received)
                counts[path] = counts.get(path, 0) + 1
                n = counts[path]
            rule = receiver.rules.get(path, lambda _n: 200)
            answer = rule(n)
            status, headers, payload = (
                (answer, {}, b'{"status":"success"}') if isinstance(answer, int) else answer
            )
            received.status = status
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST

    server = _QuietServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    cert = ca.issue_cert(*hostnames)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    receiver.server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver
