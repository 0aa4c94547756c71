"""Receivers that misbehave: too slow, resetting connections, an untrusted certificate,
flapping between 200 and 500. Each is retried and classified, with the cause in the log."""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid

import pytest
import trustme
from click.testing import CliRunner

import shahihooks
from shahihooks.cli import main
from shahihooks.transport import post
from tests.conftest import SECRET, wait_until
from tests.receiver import Receiver, start_receiver

pytestmark = pytest.mark.usefixtures("worker")


def log_rows(url: str) -> list[dict[str, str]]:
    import json

    out = CliRunner().invoke(main, ["log", "--url", url, "--json"]).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_slow_receiver_times_out_and_is_retried(settings, receiver: Receiver) -> None:
    path = f"/slow-{uuid.uuid4().hex[:6]}"
    settings(urls=(receiver.url(path),), timeout_s=1, retry_schedule_s=(0.2,))
    receiver.rule(path, lambda n: (time.sleep(2), 200)[1] if n == 1 else 200)
    shahihooks.emit("ticket.created", {"ticket_id": 1})
    rows = wait_until(
        lambda: [r for r in log_rows(receiver.url(path))][1:] and log_rows(receiver.url(path)),
        15,
        "two attempts",
    )
    first, second = rows[0], rows[1]  # type: ignore[index]
    assert first["outcome"] == "retry"
    assert first["error"] == "timeout: no complete answer within 1 s"
    assert second["outcome"] == "delivered"


def test_connection_reset_is_retried_then_dead_lettered_with_the_cause(settings) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    stop = threading.Event()

    def reset_everyone() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST, not FIN

    threading.Thread(target=reset_everyone, daemon=True).start()
    url = f"http://127.0.0.1:{port}/reset"  # plain HTTP: the reset meets the request itself
    settings(urls=(url,), retry_schedule_s=(0.2, 0.2), allow_http=True)
    try:
        (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 2})
        rows = wait_until(
            lambda: [r for r in log_rows(url) if r["outcome"] == "dead"] and log_rows(url),
            20,
            "dead letter",
        )
    finally:
        stop.set()
        server.close()
    assert [r["outcome"] for r in rows] == ["retry", "retry", "dead"]  # type: ignore[index]
    assert all("connection error" in r["error"] for r in rows)  # type: ignore[union-attr]
    assert any("reset" in r["error"].lower() or "aborted" in r["error"].lower() for r in rows)  # type: ignore[union-attr]
    assert rows[0]["id"] == delivery.id  # type: ignore[index]


def test_untrusted_certificate_is_a_tls_failure(settings) -> None:
    other = start_receiver(trustme.CA(), "", ("127.0.0.1",))  # signed by a CA we do not trust
    url = other.url("/tls")
    settings(urls=(url,), retry_schedule_s=(0.2,))
    shahihooks.emit("ticket.created", {"ticket_id": 3})
    rows = wait_until(
        lambda: [r for r in log_rows(url) if r["outcome"] == "dead"] and log_rows(url),
        15,
        "dead letter",
    )
    assert all(r["error"].startswith("tls error") for r in rows)  # type: ignore[union-attr]
    assert "CERTIFICATE_VERIFY_FAILED" in rows[0]["error"]  # type: ignore[index]
    assert other.requests_to("/tls") == [], "no request goes over an untrusted connection"
    other.server.shutdown()


def test_flapping_receiver_is_classified_each_time_and_delivered(
    settings, receiver: Receiver
) -> None:
    path = f"/flap-{uuid.uuid4().hex[:6]}"
    settings(urls=(receiver.url(path),), retry_schedule_s=(0.2,) * 7)  # never 8 500s in a row
    receiver.rule(path, lambda n: 500 if n % 2 else 200)
    deliveries = [shahihooks.emit("ticket.created", {"ticket_id": i})[0] for i in range(6)]
    wait_until(
        lambda: len([r for r in log_rows(receiver.url(path)) if r["outcome"] == "delivered"]) == 6,
        20,
        "all delivered",
    )
    rows = log_rows(receiver.url(path))
    assert {r["id"] for r in rows if r["outcome"] == "delivered"} == {d.id for d in deliveries}
    assert all(
        r["status"] == 500 and r["error"] == "HTTP 500" for r in rows if r["outcome"] == "retry"
    )


def test_a_kept_alive_connection_closed_by_the_receiver_is_not_a_failed_attempt(settings) -> None:
    """An idle receiver closes its end of a kept-alive connection just as the next delivery
    goes out on it: that POST goes again on a new connection, within the same attempt."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    connections: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            connections.append(1)
            with conn:
                for n in (1, 2):
                    if not conn.recv(65536):
                        break
                    if n == 2 and len(connections) == 1:
                        break  # the first connection: closed without answering its second
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    threading.Thread(target=serve, daemon=True).start()
    s = settings(allow_http=True)
    url = f"http://127.0.0.1:{port}/keep"
    headers = shahihooks.sign_headers(
        b"{}", delivery_id="evt_k-1", event="ticket.created", secrets=SECRET
    )
    try:
        assert post(url, b"{}", headers, s).status == 200
        second = post(url, b"{}", headers, s)
    finally:
        server.close()
    assert (second.status, second.error) == (200, None)
    assert len(connections) == 2
