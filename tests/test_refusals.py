"""Everything emit refuses is refused before anything is enqueued, with a clear error."""

from __future__ import annotations

import base64
import json
import re
import uuid

import pytest
import redis

import shahihooks
from shahihooks.app import create_app
from shahihooks.celeryconf import celery_config, check_celery_config
from shahihooks.endpoints import Endpoint, EndpointStore
from shahihooks.errors import ConfigurationError, EventError, PayloadTooLarge, UnsafeTargetError
from tests.conftest import SECRET
from tests.receiver import Receiver


def queued_and_stored(client: redis.Redis, s: shahihooks.Settings) -> tuple[int, int]:
    bodies = list(client.scan_iter(match=f"{s.prefix}:body:*"))
    return client.llen(s.queue), len(bodies)


def idle_queue() -> str:
    """A queue no worker reads, this test's own (so it is empty unless this test fills it)."""
    return f"shtest-idle-{uuid.uuid4().hex[:8]}"


def test_http_url_is_refused_at_configuration(settings) -> None:
    with pytest.raises(UnsafeTargetError, match="got 'http://127.0.0.1:9/x'"):
        settings(urls=("http://127.0.0.1:9/x",))


@pytest.mark.usefixtures("worker")
def test_name_resolving_to_loopback_is_dead_lettered_without_the_allowance(
    settings, receiver: Receiver
) -> None:
    from shahihooks import dead
    from tests.conftest import wait_until

    s = settings(urls=(receiver.url("/private", host="localhost"),), allow_networks=())
    # emit resolves no name (one endpoint's DNS is its own delivery's business)
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 1})
    wait_until(lambda: dead.get(delivery.id, s), what="its dead letter")
    letter = dead.get(delivery.id, s)
    assert letter is not None
    assert re.search(r"'localhost' resolves to 127\.0\.0\.1.*refused", letter.reason)
    assert receiver.requests_to("/private") == []


def test_body_over_one_megabyte_is_refused_at_emit(settings, redis_client: redis.Redis) -> None:
    s = settings(urls=("https://127.0.0.1:9/x",), queue=idle_queue())
    with pytest.raises(PayloadTooLarge, match="over the limit of 1,048,576 bytes"):
        shahihooks.emit("ticket.created", {"content": "x" * 1_048_576})
    assert queued_and_stored(redis_client, s) == (0, 0)


def test_unknown_event_is_refused_at_emit(settings, redis_client: redis.Redis) -> None:
    s = settings(urls=("https://127.0.0.1:9/x",), queue=idle_queue())
    with pytest.raises(EventError, match="unknown event 'ticket.exploded'"):
        shahihooks.emit("ticket.exploded", {})
    assert queued_and_stored(redis_client, s) == (0, 0)


def test_custom_event_can_be_emitted_once_registered(settings, redis_client: redis.Redis) -> None:
    s = settings(urls=("https://127.0.0.1:9/x",), queue=f"shtest-idle-{uuid.uuid4().hex[:6]}")
    shahihooks.register_event("invoice.paid", "an invoice is paid", ("invoice_id",))
    (delivery,) = shahihooks.emit("invoice.paid", {"invoice_id": 1})
    assert delivery.event == "invoice.paid"
    redis_client.delete(s.queue)


def test_throttled_event_without_its_field_is_refused(settings) -> None:
    settings(urls=("https://127.0.0.1:9/x",), queue=idle_queue())
    with pytest.raises(shahihooks.PayloadError, match="per 'article_id'.*got: \\['title'\\]"):
        shahihooks.emit("article.viewed", {"title": "x"})


def test_task_messages_read_well_in_flower_and_carry_no_secret(
    settings, redis_client: redis.Redis
) -> None:
    queue = f"shtest-peek-{uuid.uuid4().hex[:6]}"
    s = settings(urls=("https://127.0.0.1:9/hook",), queue=queue)
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 1, "title": "Hi"})
    (raw,) = redis_client.lrange(queue, 0, -1)
    redis_client.delete(queue)
    message = json.loads(raw)
    assert message["headers"]["id"] == delivery.id
    assert message["headers"]["task"] == "shahihooks.deliver"
    assert message["headers"]["argsrepr"] == "ticket.created → https://127.0.0.1:9/hook (attempt 1)"
    args = json.loads(base64.b64decode(message["body"]))[0]
    assert args == [delivery.id, 1], "a reference to the delivery, never its URL"
    assert SECRET not in raw.decode()
    assert "Hi" not in raw.decode(), "task messages carry a reference, not the body"
    assert s.secret == SECRET


def test_startup_check_refuses_a_short_visibility_timeout(tmp_path, monkeypatch) -> None:
    (tmp_path / "shortvis.py").write_text(
        "broker_url = 'redis://127.0.0.1:6379/15'\n"
        "broker_transport_options = {'visibility_timeout': 20}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CELERY_CONFIG_MODULE", "shortvis")
    settings = shahihooks.Settings()
    app = create_app(settings)
    with pytest.raises(ConfigurationError, match=r"visibility_timeout is 20 s.*mid-attempt"):
        check_celery_config(app.conf, settings)


def test_startup_check_refuses_early_acks() -> None:
    conf = {**celery_config(shahihooks.Settings()), "task_acks_late": False}
    with pytest.raises(ConfigurationError, match="task_acks_late is off"):
        check_celery_config(conf, shahihooks.Settings())


def test_our_own_config_passes_the_startup_check() -> None:
    settings = shahihooks.Settings()
    check_celery_config(celery_config(settings), settings)


def test_endpoint_store_refuses_unsafe_and_secretless_endpoints(
    settings, redis_client: redis.Redis
) -> None:
    s = settings(secret=None)
    store = EndpointStore(redis_client, s)
    with pytest.raises(UnsafeTargetError, match="http://"):
        store.add(Endpoint("http://127.0.0.1:9/x", secrets=("store-secret-0123456789",)))
    with pytest.raises(ConfigurationError, match="has no secret"):
        store.add(Endpoint("https://127.0.0.1:9/x"))
    with pytest.raises(ConfigurationError, match="rate limit -1"):
        store.add(
            Endpoint("https://127.0.0.1:9/x", secrets=("store-secret-0123456789",), rate_limit=-1)
        )
