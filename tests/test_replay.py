"""Replays at the receiver helpers: a real delivery (sent by a real worker to a real HTTPS
receiver) replayed at the Flask and Django decorators runs the handler once, however its
headers are changed; bodies are bounded before they are read; a 401 says nothing useful to
the sender."""

from __future__ import annotations

import http.client
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import flask
import pytest
from django.core.cache import caches
from django.http import HttpRequest, JsonResponse
from django.test import RequestFactory
from werkzeug.serving import make_server

import shahihooks
from shahihooks.contrib import django as django_contrib
from shahihooks.contrib import flask as flask_contrib
from tests.conftest import SECRET
from tests.receiver import Receiver

REPLAYS = 6


@pytest.fixture
def delivery(settings, receiver: Receiver, worker: object) -> tuple[bytes, dict[str, str]]:
    """One real delivery as it arrived: its exact body and its signed headers."""
    path = f"/replay-{uuid.uuid4().hex[:8]}"
    settings(urls=(receiver.url(path),))
    shahihooks.emit("ticket.created", {"ticket_id": 42, "title": "Replay me"})
    (got,) = receiver.wait_for(path, 1)
    wanted = ("webhook-", "x-shahi-assist-")
    return got.body, {k: v for k, v in got.headers.items() if k.startswith(wanted)}


def stripped(headers: dict[str, str]) -> dict[str, str]:
    """The attack: Standard Webhooks headers removed, a fresh (unsigned) delivery id."""
    out = {k: v for k, v in headers.items() if not k.startswith("webhook-")}
    out["x-shahi-assist-delivery"] = f"evt_{uuid.uuid4().hex}-fresh"
    return out


def fresh_webhook_id(headers: dict[str, str]) -> dict[str, str]:
    """The attack's other form: the signature removed, a fresh webhook-id."""
    out = {k: v for k, v in headers.items() if k != "webhook-signature"}
    out["webhook-id"] = f"evt_{uuid.uuid4().hex}-fresh"
    return out


Poster = Callable[[bytes, dict[str, str]], tuple[int, Any]]


@pytest.fixture
def flask_post() -> tuple[Poster, list[Any]]:
    app = flask.Flask("replay")
    handled: list[Any] = []

    @app.post("/in")
    @flask_contrib.webhook_receiver(SECRET)
    def hook() -> dict[str, str]:
        handled.append(flask.g.webhook)
        return {"status": "success"}

    client = app.test_client()

    def send(body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        response = client.post("/in", data=body, headers=headers, content_type="application/json")
        return response.status_code, response.get_json()

    return send, handled


@pytest.fixture
def django_post() -> tuple[Poster, list[Any]]:
    handled: list[Any] = []

    @django_contrib.webhook_receiver(SECRET)
    def hook(request: HttpRequest) -> JsonResponse:
        handled.append(request.webhook)  # type: ignore[attr-defined]
        return JsonResponse({"status": "success"})

    factory = RequestFactory()

    def send(body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        request = factory.post("/in", data=body, content_type="application/json", headers=headers)
        response = hook(request)
        return response.status_code, _json(response.content)

    return send, handled


def _json(raw: bytes) -> Any:
    import json

    return json.loads(raw)


@pytest.fixture(params=["flask", "django"])
def post(request: pytest.FixtureRequest) -> tuple[Poster, list[Any]]:
    return request.getfixturevalue(f"{request.param}_post")  # type: ignore[no-any-return]


def test_a_delivery_replayed_without_its_standard_headers_runs_the_handler_once(
    delivery, post
) -> None:
    send, handled = post
    body, headers = delivery
    assert send(body, headers) == (200, {"status": "success"})
    answers = [send(body, stripped(headers)) for _ in range(REPLAYS)]
    assert [a[1]["status"] for a in answers] == ["duplicate"] * REPLAYS
    assert len(handled) == 1


def test_replays_before_the_original_still_run_the_handler_once(delivery, post) -> None:
    send, handled = post
    body, headers = delivery
    for _ in range(REPLAYS):
        send(body, stripped(headers))
    assert send(body, headers)[1]["status"] == "duplicate"
    assert len(handled) == 1


def test_a_replay_with_a_fresh_webhook_id_and_no_signature_is_refused(delivery, post) -> None:
    send, handled = post
    body, headers = delivery
    answers = [send(body, fresh_webhook_id(headers)) for _ in range(REPLAYS)]
    assert [a[0] for a in answers] == [401] * REPLAYS, "no fall-back to the page's header"
    assert handled == []


@pytest.mark.parametrize("dropped", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_any_standard_header_means_the_standard_scheme_must_verify(
    delivery, post, dropped: str
) -> None:
    send, handled = post
    body, headers = delivery
    partial = {k: v for k, v in headers.items() if k != dropped}
    assert send(body, partial)[0] == 401
    assert handled == []


def test_a_standard_signature_other_than_v1_is_refused(delivery, post) -> None:
    send, handled = post
    body, headers = delivery
    signature = headers["webhook-signature"].partition(",")[2]
    assert send(body, {**headers, "webhook-signature": f"v1a,{signature}"})[0] == 401
    assert send(body, {**headers, "webhook-signature": f"v2,{signature}"})[0] == 401
    assert handled == []


def test_a_page_scheme_body_without_an_id_is_deduplicated_by_its_hash(post, settings) -> None:
    settings()
    send, handled = post
    body = f'{{"event":"ticket.created","timestamp":1,"data":{{"n":"{uuid.uuid4().hex}"}}}}'
    headers = {"X-Shahi-Assist-Signature": shahihooks.signing.page_signature(body.encode(), SECRET)}
    for n in range(3):
        headers["X-Shahi-Assist-Delivery"] = f"evt_{n}"
        send(body.encode(), headers)
    assert len(handled) == 1


def test_standard_only_refuses_the_page_scheme(delivery, settings) -> None:
    body, headers = delivery
    app = flask.Flask("strict")
    handled: list[Any] = []

    @app.post("/in")
    @flask_contrib.webhook_receiver(SECRET, standard_only=True)
    def hook() -> dict[str, str]:
        handled.append(1)
        return {"status": "success"}

    client = app.test_client()
    page_only = {k: v for k, v in headers.items() if not k.startswith("webhook-")}
    assert client.post("/in", data=body, headers=page_only).status_code == 401
    assert client.post("/in", data=body, headers=headers).status_code == 200
    assert handled == [1]


def test_a_401_answers_a_generic_message_and_logs_the_details(
    delivery, post, caplog: pytest.LogCaptureFixture
) -> None:
    send, _ = post
    body, headers = delivery
    with caplog.at_level(logging.WARNING, logger="shahihooks.receiving"):
        status, reply = send(body + b" ", headers)
    assert (status, reply) == (401, {"error": "Invalid signature"})
    assert "does not match the body under any of the 1 secret(s)" in caplog.text


def test_a_stale_timestamp_answers_the_same_generic_401(delivery, post, caplog) -> None:
    send, handled = post
    body, headers = delivery
    old = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 3600)}
    with caplog.at_level(logging.WARNING, logger="shahihooks.receiving"):
        assert send(body, old) == (401, {"error": "Invalid signature"})
    assert "outside the ±300 s tolerance" in caplog.text
    assert handled == []


def test_a_body_over_the_limit_is_refused_with_413_before_it_is_verified(
    post, settings, caplog
) -> None:
    settings(max_body_bytes=1000)
    send, handled = post
    body = b'{"id":"evt_big-1","pad":"' + b"x" * 1000 + b'"}'
    headers = shahihooks.sign_headers(body, delivery_id="evt_big-1", event="e.x", secrets=SECRET)
    with caplog.at_level(logging.WARNING, logger="shahihooks.receiving"):
        status, reply = send(body, headers)
    assert status == 413
    assert reply == {"error": "Payload too large"}
    assert "over 1000 bytes" in caplog.text
    assert handled == []
    small = b'{"id":"evt_small-1"}'
    headers = shahihooks.sign_headers(
        small, delivery_id=f"evt_{uuid.uuid4().hex}-1", event="e.x", secrets=SECRET
    )
    assert send(small, headers)[0] == 200


def test_a_junk_content_length_is_refused_unread(settings) -> None:
    settings()

    @django_contrib.webhook_receiver(SECRET)
    def hook(request: HttpRequest) -> JsonResponse:
        raise AssertionError("never reached")

    request = RequestFactory().post("/in", data=b"{}", content_type="application/json")
    request.META["CONTENT_LENGTH"] = "-1"
    assert hook(request).status_code == 413


@pytest.fixture
def flask_server(settings) -> Iterator[tuple[int, list[int]]]:
    """A Flask receiver served for real on 127.0.0.1 (werkzeug's server handles chunked
    request bodies), with a 1,000-byte limit."""
    settings(max_body_bytes=1000)
    app = flask.Flask("served")
    handled: list[int] = []

    @app.post("/in")
    @flask_contrib.webhook_receiver(SECRET)
    def hook() -> dict[str, str]:
        handled.append(1)
        return {"status": "success"}

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port, handled
    server.shutdown()


def test_a_chunked_body_over_the_limit_is_cut_off_with_413(flask_server) -> None:
    port, handled = flask_server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    chunks = (b"x" * 500 for _ in range(200))  # 100 KB, no Content-Length
    conn.request("POST", "/in", body=chunks, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413
    conn.close()
    assert handled == []


def test_django_cache_dedupe_keys_live_under_the_configured_prefix(settings) -> None:
    s = settings()
    seen = django_contrib.cache_seen()
    delivery_id = f"evt_{uuid.uuid4().hex}-1"
    assert seen.first(delivery_id)
    assert not seen.first(delivery_id)
    cache = caches["default"]
    assert cache.get(f"{s.prefix}:received:{delivery_id}") == 1
    assert cache.get(f"shahihooks:received:{delivery_id}") is None
    seen.forget(delivery_id)
    assert cache.get(f"{s.prefix}:received:{delivery_id}") is None
