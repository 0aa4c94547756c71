"""`shahihooks listen` hardened: one idle client stalls nobody (the TLS handshake happens per
connection, with a timeout), bodies are capped, the history is bounded."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
import trustme
from click.testing import CliRunner

import shahihooks
from shahihooks import listen
from shahihooks.cli import main
from shahihooks.listen import Listener, serve
from tests.conftest import SECRET

BODY = b'{"id":"evt_l-1","event":"ticket.created"}'


@pytest.fixture
def tls_files(ca: tuple[trustme.CA, str], tmp_path) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    pem = tmp_path / "server.pem"
    ca[0].issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    return str(pem), ca[1]


@contextlib.contextmanager
def start(listener: Listener, certfile: str | None = None) -> Iterator[int]:
    server = serve(listener, "127.0.0.1", 0, certfile, certfile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def post(port: int, body: bytes, ca_path: str | None = None, **headers: str) -> int:
    if ca_path:
        context = ssl.create_default_context(cafile=ca_path)
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=5, context=context
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    signed = shahihooks.sign_headers(body, delivery_id="evt_l-1", event="e.x", secrets=SECRET)
    conn.request("POST", "/hook", body=body, headers={**signed, **headers})
    status = conn.getresponse().status
    conn.close()
    return status


def test_an_idle_client_does_not_stall_the_tls_listener(tls_files, monkeypatch) -> None:
    monkeypatch.setattr(listen, "CONNECTION_TIMEOUT_S", 30.0)  # the idle client outlives the test
    certfile, ca_path = tls_files
    listener = Listener([SECRET])
    with start(listener, certfile) as port:
        idle = socket.create_connection(("127.0.0.1", port))  # connects, never says hello
        try:
            assert post(port, BODY, ca_path) == 200
        finally:
            idle.close()
    assert listener.received == 1


def test_a_silent_handshake_times_out_and_the_connection_is_closed(tls_files, monkeypatch) -> None:
    monkeypatch.setattr(listen, "CONNECTION_TIMEOUT_S", 0.5)
    certfile, _ = tls_files
    with (
        start(Listener([SECRET]), certfile) as port,
        socket.create_connection(("127.0.0.1", port)) as idle,
    ):
        idle.settimeout(10)
        assert idle.recv(1) == b"", "the server hung up on the silent client"


def test_a_body_over_the_cap_is_refused_unread() -> None:
    listener = Listener([SECRET], max_body_bytes=100)
    with start(listener) as port:
        assert post(port, b'{"pad":"' + b"x" * 200 + b'"}') == 413
        assert post(port, BODY) == 200
    assert listener.received == 1, "the refused body was not handed to the verifier"


def test_a_bad_content_length_is_refused() -> None:
    listener = Listener([SECRET])
    with start(listener) as port, socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 413")
    assert listener.received == 0


def test_the_history_is_bounded_and_the_counts_are_not() -> None:
    shown: list[int] = []
    listener = Listener([SECRET], on_heard=lambda heard, n: shown.append(n), history=3)
    for n in range(5):
        headers = shahihooks.sign_headers(
            BODY, delivery_id=f"evt_l-{n}", event="e.x", secrets=SECRET
        )
        listener.handle(BODY if n < 4 else BODY + b" ", headers)
    assert len(listener.heard) == 3
    assert [h.delivery_id for h in listener.heard] == ["evt_l-2", "evt_l-3", "evt_l-4"]
    assert (listener.received, listener.verified) == (5, 4)
    assert shown == [1, 2, 3, 4, 5]


def test_the_listener_never_shows_its_secrets() -> None:
    shown = repr(Listener(["listener-secret-value"]))
    assert "listener-secret-value" not in shown
    assert "'***'" in shown
    weak = CliRunner().invoke(main, ["listen", "--port", "0", "--secret", "fifteen-bytes!!"])
    assert weak.exit_code == 1
    assert "--secret is too short" in weak.output
    assert "fifteen-bytes!!" not in weak.output


def test_a_malformed_timestamp_is_answered_401() -> None:
    listener = Listener([SECRET])
    with start(listener) as port:
        status = post(port, BODY, **{"webhook-timestamp": "9" * 400})
    assert status == 401
    (heard,) = listener.heard
    assert heard.valid is False
    assert "not a number of seconds" in heard.reason
