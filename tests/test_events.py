"""The event catalogue: the page's ten events, custom events, and bad names."""

from __future__ import annotations

import pytest

from shahihooks.errors import EventError
from shahihooks.events import BUILTIN_EVENTS, EventRegistry

PAGE_EVENTS = {
    "ticket.created",
    "ticket.status_changed",
    "ticket.reply_added",
    "ticket.assigned",
    "ticket.closed",
    "article.published",
    "article.updated",
    "article.viewed",
    "user.role_changed",
    "agent.login",
}


def test_the_ten_page_events_are_built_in_with_descriptions_and_fields() -> None:
    assert {e.name for e in BUILTIN_EVENTS} == PAGE_EVENTS
    assert all(e.description and e.fields for e in BUILTIN_EVENTS)


def test_page_payload_fields_are_the_documented_ones() -> None:
    events = {e.name: e for e in BUILTIN_EVENTS}
    assert "custom_fields" in events["ticket.created"].fields
    assert events["ticket.status_changed"].fields == (
        "ticket_id",
        "old_status",
        "new_status",
        "changed_by",
        "change_reason",
    )
    assert "categories" in events["article.published"].fields
    assert events["article.viewed"].throttle_field == "article_id"


def test_custom_event_can_be_registered_and_found() -> None:
    registry = EventRegistry()
    registry.register("invoice.paid", "an invoice is paid", ("invoice_id",))
    assert registry.get("invoice.paid").custom


def test_unknown_event_names_it_and_lists_known_ones() -> None:
    with pytest.raises(EventError, match=r"unknown event 'ticket.deleted'.*ticket.created"):
        EventRegistry().get("ticket.deleted")


@pytest.mark.parametrize("name", ["ticket", "Ticket.Created", "ticket created", "ticket.", ""])
def test_malformed_names_are_refused(name: str) -> None:
    with pytest.raises(EventError, match="malformed event name"):
        EventRegistry().register(name)


def test_built_in_event_cannot_be_replaced() -> None:
    registry = EventRegistry()
    assert not registry.register("ticket.created", "other").custom


def test_every_built_in_event_has_an_example_with_exactly_its_fields() -> None:
    registry = EventRegistry()
    for event in BUILTIN_EVENTS:
        assert set(registry.get(event.name).example) == set(event.fields), event.name


def test_the_pages_three_examples_are_the_pages_data() -> None:
    registry = EventRegistry()
    created = registry.get("ticket.created").example
    assert created["ticket_url"] == "https://example.com/ticket/login-issue/"
    assert created["custom_fields"] == {"priority": "high", "product": "web_app"}
    assert registry.get("ticket.status_changed").example["change_reason"] == (
        "Waiting for user response"
    )
    assert registry.get("article.published").example["tags"] == ["password", "login"]
    assert registry.register("invoice.paid", "an invoice is paid").example == {}
