"""A local receiver that verifies and prints deliveries (instead of webhook.site/RequestBin).

It answers 401 to a delivery that does not verify (as the page's handlers do), and
`--status` to the others, so `--status 500` makes it fail on purpose to watch retries.
With `php`, it verifies as the page's PHP handler does (`bodystyle.verify_like_php`).

Bounded everywhere: each connection gets its own thread, in which its TLS handshake and its
reads time out (an idle client stalls nobody else), and the handshake and each request must
be over within REQUEST_DEADLINE_S (a client sending a byte every few seconds is cut off);
a body over `max_body_bytes` is refused with 413 unread; only the last `history` requests
are kept, a request that did not verify without its body beyond UNVERIFIED_BODY_BYTES, and
all the kept bodies within `history_bytes`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import http.server
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shahihooks.bodystyle import verify_like_php
from shahihooks.errors import VerificationError
from shahihooks.payload import MAX_BODY_BYTES
from shahihooks.receiving import declared_too_large
from shahihooks.signing import verify
from shahihooks.terminal import printable
from shahihooks.watchdog import shut_down

CONNECTION_TIMEOUT_S = 10.0
REQUEST_DEADLINE_S = 30.0
HISTORY = 1000
HISTORY_BYTES = 16 * 1024 * 1024
UNVERIFIED_BODY_BYTES = 1024


@dataclass
class Heard:
    """One request the listener received."""

    valid: bool | None  # None: not verified (the listener has no secret)
    event: str
    delivery_id: str
    attempt: str
    body: bytes
    reason: str = ""
    status: int = 200  # what the listener answered

    def line(self, n: int) -> str:
        """One printable line (every part came from the request: terminal.printable): ✓ for
        a delivery answered 2xx, `✗ <status>` for one answered otherwise (the sender counts
        it failed and retries), and whether its signature verified."""
        if self.status >= 300:
            mark = f"✗ {self.status}"
        else:
            mark = "?" if self.valid is None else ("✓" if self.valid else "✗")
        short = self.body.decode("utf-8", "replace")
        short = short if len(short) <= 100 else short[:97] + "..."
        reason = self.reason
        if self.valid and self.status >= 300:
            reason = f"signature ✓; answered {self.status} as told (--status)"
        tail = f"  {reason}" if reason else ""
        return printable(
            f"[{n}] {mark} {self.event}  {self.delivery_id}  attempt {self.attempt}  {short}{tail}",
            lines=False,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "event": self.event,
            "id": self.delivery_id,
            "attempt": self.attempt,
            "body": self.body.decode("utf-8", "replace"),
            "reason": self.reason,
            "status": self.status,
        }


@dataclass
class Listener:
    """What the local receiver heard: the last `history` requests, and counts of all."""

    secrets: list[str]
    status: int = 200
    on_heard: Callable[[Heard, int], None] = lambda heard, n: None
    history: int = HISTORY
    max_body_bytes: int = MAX_BODY_BYTES
    history_bytes: int = HISTORY_BYTES
    heard: collections.deque[Heard] = field(init=False)
    kept_bytes: int = 0
    received: int = 0
    verified: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    php: bool = False  # verify as the page's PHP handler does

    def __post_init__(self) -> None:
        self.heard = collections.deque()

    def __repr__(self) -> str:
        return (
            f"Listener(secrets={['***' for _ in self.secrets]!r}, status={self.status}, "
            f"received={self.received}, verified={self.verified})"
        )

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
        heard.status = status
        with self.lock:
            self._keep(heard)
            self.received += 1
            self.verified += heard.valid is True
            n = self.received
        self.on_heard(heard, n)
        return status

    def _keep(self, heard: Heard) -> None:
        """Into the history: a body that did not verify is cut to UNVERIFIED_BODY_BYTES
        (anyone can send one), then the oldest go until `history` and `history_bytes` hold."""
        if heard.valid is not True:
            heard = dataclasses.replace(heard, body=heard.body[:UNVERIFIED_BODY_BYTES])
        self.heard.append(heard)
        self.kept_bytes += len(heard.body)
        while self.heard and (
            len(self.heard) > self.history or self.kept_bytes > self.history_bytes
        ):
            self.kept_bytes -= len(self.heard.popleft().body)


@contextlib.contextmanager
def deadline(sock: socket.socket, seconds: float) -> Iterator[None]:
    """Shut `sock` down if the block has not ended within `seconds`: its reads time out
    one by one, and this bounds them all together."""
    timer = threading.Timer(seconds, shut_down, (sock,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


class _Server(http.server.ThreadingHTTPServer):
    """Accepts in one thread; the TLS handshake happens in the connection's own thread."""

    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(CONNECTION_TIMEOUT_S)
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            with deadline(request, REQUEST_DEADLINE_S):
                conn = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return  # a slow, silent or broken handshake drops this client only
        with conn:
            super().finish_request(conn, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up or times out is not the operator's problem


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
        timeout = CONNECTION_TIMEOUT_S

        def log_message(self, *args: Any) -> None:
            pass

        def handle_one_request(self) -> None:
            with deadline(self.connection, REQUEST_DEADLINE_S):
                super().handle_one_request()

        def do_POST(self) -> None:
            length = self.headers.get("Content-Length")
            if length is None or declared_too_large(length, listener.max_body_bytes):
                refused = (411, "length required") if length is None else (413, "too large")
                self._reply(refused[0], {"error": refused[1]})
                self.close_connection = True
                return
            body = self.rfile.read(int(length))
            status = listener.handle(body, dict(self.headers.items()))
            self._reply(status, {"status": "success" if status < 300 else "error"})

        def _reply(self, status: int, payload: dict[str, str]) -> None:
            reply = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = _Server((host, port), Handler)
    if certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        server.tls = context
    return server
