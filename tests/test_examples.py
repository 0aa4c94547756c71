"""The page's integration examples, run: Slack and CRM actions in a real worker, Zapier as
an endpoint."""

from __future__ import annotations

import json
import uuid

import pytest

import shahihooks
from examples import crm, slack, zapier
from tests.conftest import SECRET
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("worker")

TICKET = {
    "ticket_id": 123,
    "title": "Login issue",
    "status": "open",
    "author_email": "user@example.com",
    "ticket_url": "https://example.com/ticket/login-issue/",
}


def test_slack_message_has_title_link_and_status() -> None:
    message = slack.slack_message({"data": TICKET})
    assert message["text"] == "New ticket: Login issue"
    (attachment,) = message["attachments"]
    assert attachment["title_link"] == TICKET["ticket_url"]
    assert attachment["fields"] == [{"title": "Status", "value": "open", "short": True}]


def test_slack_and_crm_actions_run_in_the_worker(
    settings, receiver: Receiver, ca, monkeypatch
) -> None:
    settings()
    slack_path, crm_path = f"/slack-{uuid.uuid4().hex[:6]}", f"/crm-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url(slack_path))
    monkeypatch.setenv("CRM_API_URL", receiver.url(crm_path))
    monkeypatch.setenv("CRM_API_KEY", "crm-key")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca[1])
    shahihooks.hooks.action("ticket.created", name="slack")(slack.send_to_slack)
    shahihooks.hooks.action("ticket.created", name="crm")(crm.sync_to_crm)
    receiver.rule(slack_path, lambda n: 500 if n == 1 else 200)  # Slack hiccups once
    deliveries = shahihooks.emit("ticket.created", TICKET)
    assert sorted(d.url for d in deliveries) == ["action:crm", "action:slack"]
    slack_calls = receiver.wait_for(slack_path, 2)
    assert json.loads(slack_calls[1].body)["text"] == "New ticket: Login issue"
    (crm_call,) = receiver.wait_for(crm_path, 1)
    assert json.loads(crm_call.body) == {
        "email": "user@example.com",
        "ticket_id": 123,
        "status": "open",
    }
    assert crm_call.header("authorization") == "Bearer crm-key"


def test_zapier_endpoint_receives_ticket_created(settings, receiver: Receiver) -> None:
    settings()
    p = f"/hooks/catch/123/{uuid.uuid4().hex[:6]}/"
    zapier.add_zapier_endpoint(receiver.url(p))
    assert shahihooks.emit("ticket.closed", {"ticket_id": 1}) == []
    shahihooks.emit("ticket.created", TICKET)
    (got,) = receiver.wait_for(p, 1)
    assert shahihooks.verify(got.body, got.headers, SECRET)["data"] == TICKET
