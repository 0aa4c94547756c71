"""Django: emit waits for COMMIT (the outbox row goes with it); settings from the SHAHIHOOKS
dict, override_settings and the system check; the receiver decorator verifies, answers 401,
drops duplicates. A real test database (sqlite on disk), a real worker, a real HTTPS
receiver. The outbox with Redis away: test_django_outbox.py."""

from __future__ import annotations

import time
import uuid

import pytest
from django.db import transaction
from django.test import Client

import shahihooks
from examples import django_receiver
from shahihooks.contrib.django import emit
from shahihooks.contrib.django.models import OutboxEvent
from tests.conftest import SECRET
from tests.django_project.tickets.models import Ticket
from tests.receiver import Receiver

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.django_db(transaction=True)]


def path() -> str:
    return f"/django-{uuid.uuid4().hex[:8]}"


def test_committed_ticket_is_delivered_once_and_only_after_its_row_exists(
    settings, receiver: Receiver
) -> None:
    p = path()
    settings(urls=(receiver.url(p),))
    row_existed: list[bool] = []
    title = f"Login issue {uuid.uuid4().hex[:6]}"

    def answer(n: int) -> int:
        row_existed.append(Ticket.objects.filter(title=title).exists())
        return 200

    receiver.rule(p, answer)
    with transaction.atomic():
        ticket = Ticket.objects.create(title=title)
        emit("ticket.created", {"ticket_id": ticket.pk, "title": title})
        time.sleep(0.5)
        assert receiver.requests_to(p) == [], "sent before COMMIT"
    (got,) = receiver.wait_for(p, 1)
    assert shahihooks.verify(got.body, got.headers, SECRET)["data"]["ticket_id"] == ticket.pk
    time.sleep(0.5)
    assert len(receiver.requests_to(p)) == 1
    assert row_existed == [True]
    (pushed,) = OutboxEvent.objects.all()  # the next emit's transaction deletes it
    assert (pushed.event, pushed.attempts, pushed.last_error) == ("ticket.created", 0, "")
    with transaction.atomic():
        emit("ticket.closed", {"ticket_id": ticket.pk})
    assert pushed.pk not in {row.pk for row in OutboxEvent.objects.all()}
    receiver.wait_for(p, 2)


def test_rolled_back_ticket_enqueues_nothing(settings, receiver: Receiver, redis_client) -> None:
    p = path()
    s = settings(urls=(receiver.url(p),))
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012
        ticket = Ticket.objects.create(title="never")
        emit("ticket.created", {"ticket_id": ticket.pk})
        raise RuntimeError("rollback")
    time.sleep(1.0)
    assert receiver.requests_to(p) == []
    assert list(redis_client.scan_iter(match=f"{s.prefix}:body:*")) == []
    assert not OutboxEvent.objects.exists(), "rolled back with the ticket"


def test_bad_input_raises_at_the_call_not_at_commit(settings) -> None:
    settings(urls=("https://127.0.0.1:9/x",))
    with (
        pytest.raises(shahihooks.PayloadError, match=r"data\['tags'\] is a set"),
        transaction.atomic(),
    ):
        emit("ticket.created", {"tags": {"a"}})


def test_receiver_accepts_a_real_delivery_rejects_tampering_and_drops_duplicates(
    settings, receiver: Receiver
) -> None:
    p = path()
    settings(urls=(receiver.url(p),))
    shahihooks.emit("ticket.created", {"ticket_id": 77, "title": "Real"})
    (real,) = receiver.wait_for(p, 1)
    headers = {k: v for k, v in real.headers.items() if k.startswith(("webhook-", "x-shahi"))}
    client = Client()
    django_receiver.handled.clear()

    def post(body: bytes):  # type: ignore[no-untyped-def]
        return client.post(
            "/webhook/shahi-assist", data=body, content_type="application/json", headers=headers
        )

    first = post(real.body)
    assert first.status_code == 200
    assert first.json() == {"status": "success"}
    again = post(real.body)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert [h["data"]["ticket_id"] for h in django_receiver.handled] == [77]
    tampered = post(real.body.replace(b'"ticket_id":77', b'"ticket_id":78'))
    assert tampered.status_code == 401
    assert tampered.json()["error"] == "Invalid signature"
    assert len(django_receiver.handled) == 1


def test_override_settings_reconfigures_shahihooks_and_restores_the_project_dict() -> None:
    from django.conf import settings as django_settings
    from django.test import override_settings

    from shahihooks.contrib.django.apps import settings_from
    from shahihooks.settings import current

    project = settings_from(django_settings.SHAHIHOOKS)
    try:
        with override_settings(SHAHIHOOKS={"RATE_LIMIT": 3, "SECRET": SECRET}):
            assert current().rate_limit == 3
            assert current().secret == SECRET
        assert current() == project
    finally:
        shahihooks.configure(shahihooks.Settings())


def test_override_settings_names_a_bad_value() -> None:
    from django.test import override_settings

    try:
        with (
            pytest.raises(
                shahihooks.ConfigurationError, match=r"""settings.SHAHIHOOKS\["RATE_LIMIT"\]=-1"""
            ),
            override_settings(SHAHIHOOKS={"RATE_LIMIT": -1}),
        ):
            pass
    finally:
        shahihooks.configure(shahihooks.Settings())


def test_a_bad_settings_dict_is_a_system_check_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import settings as django_settings
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    monkeypatch.setattr(django_settings, "SHAHIHOOKS", {"URLS": ["https://example.com/hook"]})
    with pytest.raises(SystemCheckError, match=r"shahihooks.E001.*SHAHIHOOKS_SECRET is not"):
        call_command("check")
    monkeypatch.setattr(django_settings, "SHAHIHOOKS", {"SECRET": SECRET})
    call_command("check")


def test_a_malformed_timestamp_is_answered_401_not_500(settings) -> None:
    settings()
    headers = {
        "webhook-id": "evt_x-1",
        "webhook-timestamp": "9" * 400,
        "webhook-signature": "v1,AAAA",
    }
    answer = Client(raise_request_exception=False).post(
        "/webhook/shahi-assist", data=b"{}", content_type="application/json", headers=headers
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "Invalid signature"
