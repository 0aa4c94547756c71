"""Target safety: DNS answers that point inside (even one that changes between the check
and the connection), responses larger than the bound, and secrets that never leak."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid

import pytest
from click.testing import CliRunner

import shahihooks
from shahihooks.cli import main
from shahihooks.transport import post
from tests.conftest import SECRET, wait_until
from tests.receiver import Receiver

PUBLIC = "93.184.216.34"  # a public address: what the name resolves to at check time


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> list[str]:
    """`rebind.example` answers PUBLIC to the first lookup and 127.0.0.1 afterwards."""
    real = socket.getaddrinfo
    answers: list[str] = []

    def getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> object:
        if host == "rebind.example":
            address = PUBLIC if not answers else "127.0.0.1"
            answers.append(address)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    from shahihooks import safety

    safety._resolved.clear()
    return answers


@pytest.mark.usefixtures("worker")
def test_name_pointing_at_a_private_address_is_dead_lettered_at_its_attempt(
    settings, monkeypatch
) -> None:
    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda h, p, *a, **k: (
            [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", p))]
            if h == "internal.example"
            else real(h, p, *a, **k)
        ),
    )
    from shahihooks import dead, safety, transport
    from tests.conftest import wait_until

    safety._resolved.clear()
    transport._lookups.clear()
    s = settings(urls=("https://internal.example/hook",))
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 1})  # no name resolved here
    wait_until(lambda: dead.get(delivery.id, s), what="its dead letter")
    letter = dead.get(delivery.id, s)
    assert letter is not None
    assert "'internal.example' resolves to 10.1.2.3" in letter.reason
    assert letter.attempts == 1


def test_dns_answer_that_changes_between_check_and_connect_is_refused(
    settings, receiver: Receiver, rebinding_dns: list[str]
) -> None:
    s = settings(allow_networks=())
    from shahihooks.safety import check_target

    url = f"https://rebind.example:{receiver.port}/inside"
    check_target(url, s)  # the check sees a public address and passes
    body = b'{"id":"evt_r-1"}'
    headers = shahihooks.sign_headers(body, delivery_id="evt_r-1", event="e.x", secrets=SECRET)
    response = post(url, body, headers, s)
    assert rebinding_dns == [PUBLIC, "127.0.0.1"]
    assert response.status is None
    assert "refused" in (response.error or "")
    assert "127.0.0.1" in (response.error or "")
    assert receiver.requests_to("/inside") == [], "not a byte reached the inside"


def test_response_larger_than_the_bound_is_cut_off_unread(settings) -> None:
    s = settings(allow_http=True, max_response_bytes=65_536)
    sent = {"bytes": 0, "stopped": False}
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n")
        chunk = b"x" * 65536
        try:
            for _ in range(1600):  # 100 MB, if anyone were reading
                conn.sendall(chunk)
                sent["bytes"] += len(chunk)
        except OSError:
            sent["stopped"] = True
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    start = time.monotonic()
    response = post(f"http://127.0.0.1:{port}/big", b"{}", {}, s)
    elapsed = time.monotonic() - start
    thread.join(timeout=10)
    server.close()
    assert response.status == 200
    assert len(response.body) == 65_536
    assert sent["stopped"], "the sender must hang up, not drain the body"
    assert sent["bytes"] < 20 * 1024 * 1024
    assert elapsed < 5


@pytest.mark.usefixtures("worker")
def test_secrets_never_reach_logs_task_arguments_or_json_output(
    settings, receiver: Receiver, caplog: pytest.LogCaptureFixture, redis_client
) -> None:
    path = f"/nosecret-{uuid.uuid4().hex[:6]}"
    settings(
        urls=(receiver.url(path), f"https://user:pw-{SECRET}@127.0.0.1:{receiver.port}/x"),
        retry_schedule_s=(0.2,),
    )
    receiver.rule(path, lambda n: 500 if n == 1 else 200)
    with caplog.at_level(logging.DEBUG):
        deliveries = shahihooks.emit("ticket.created", {"ticket_id": 1})
        receiver.wait_for(path, 2)
        wait_until(lambda: receiver.requests_to("/x"), what="the credentialed url")
        time.sleep(0.5)
    assert SECRET not in caplog.text
    assert "***@" in caplog.text, "passwords in URLs are masked"
    for args in (
        ["log", "--json"],
        ["stats", "--json"],
        ["dead", "list", "--json"],
        ["endpoints", "list", "--json"],
        ["doctor", "--json", "--no-worker-check"],
    ):
        output = CliRunner().invoke(main, args).output
        assert SECRET not in output, args
    assert all(SECRET not in json.dumps([d.id, d.event]) for d in deliveries)
