"""The event catalogue: the ten built-in events of the help page, and custom ones.

The page's `shahiassist_webhook_events` filter becomes `register_event()`. Each built-in
event has an example `data` (`registry.get(name).example`): the page's own example for
ticket.created, ticket.status_changed and article.published, realistic ones for the others.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from shahihooks.errors import EventError

EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


@dataclass(frozen=True)
class Event:
    """One event: its name, what triggers it, the data fields it carries, an example data.

    `example` is shared: copy it (`dict(event.example)`) before changing it.
    """

    name: str
    description: str
    fields: tuple[str, ...] = ()
    throttle_field: str | None = None
    custom: bool = False
    example: dict[str, object] = field(default_factory=dict, compare=False)


BUILTIN_EVENTS: tuple[Event, ...] = (
    Event(
        "ticket.created",
        "a new ticket is submitted",
        (
            "ticket_id",
            "title",
            "content",
            "status",
            "author_id",
            "author_email",
            "custom_fields",
            "ticket_url",
        ),
        example={
            "ticket_id": 123,
            "title": "Login issue",
            "content": "I can't log in",
            "status": "open",
            "author_id": 5,
            "author_email": "user@example.com",
            "custom_fields": {"priority": "high", "product": "web_app"},
            "ticket_url": "https://example.com/ticket/login-issue/",
        },
    ),
    Event(
        "ticket.status_changed",
        "a ticket's status changes",
        ("ticket_id", "old_status", "new_status", "changed_by", "change_reason"),
        example={
            "ticket_id": 123,
            "old_status": "open",
            "new_status": "pending",
            "changed_by": 10,
            "change_reason": "Waiting for user response",
        },
    ),
    Event(
        "ticket.reply_added",
        "a reply is added to a ticket",
        ("ticket_id", "reply_id", "content", "author_id", "author_email", "is_agent", "reply_url"),
        example={
            "ticket_id": 123,
            "reply_id": 789,
            "content": "Could you try the reset link we just sent?",
            "author_id": 10,
            "author_email": "agent@example.com",
            "is_agent": True,
            "reply_url": "https://example.com/ticket/login-issue/#reply-789",
        },
    ),
    Event(
        "ticket.assigned",
        "a ticket is assigned to an agent",
        ("ticket_id", "agent_id", "agent_email", "previous_agent_id", "assigned_by"),
        example={
            "ticket_id": 123,
            "agent_id": 10,
            "agent_email": "agent@example.com",
            "previous_agent_id": None,
            "assigned_by": 1,
        },
    ),
    Event(
        "ticket.closed",
        "a ticket is closed",
        ("ticket_id", "closed_by", "resolution", "closed_at"),
        example={
            "ticket_id": 123,
            "closed_by": 10,
            "resolution": "Password reset, user confirmed",
            "closed_at": "2021-11-27T13:30:00Z",
        },
    ),
    Event(
        "article.published",
        "a knowledge-base article is published",
        ("article_id", "title", "author_id", "categories", "tags", "article_url"),
        example={
            "article_id": 456,
            "title": "How to reset password",
            "author_id": 1,
            "categories": ["getting-started"],
            "tags": ["password", "login"],
            "article_url": "https://example.com/kb/how-to-reset-password/",
        },
    ),
    Event(
        "article.updated",
        "a knowledge-base article is updated",
        ("article_id", "title", "author_id", "changed_fields", "article_url"),
        example={
            "article_id": 456,
            "title": "How to reset your password",
            "author_id": 1,
            "changed_fields": ["title", "content"],
            "article_url": "https://example.com/kb/how-to-reset-password/",
        },
    ),
    Event(
        "article.viewed",
        "an article is viewed (throttled: once per article per window)",
        ("article_id", "title", "viewer_id", "article_url"),
        throttle_field="article_id",
        example={
            "article_id": 456,
            "title": "How to reset your password",
            "viewer_id": 5,
            "article_url": "https://example.com/kb/how-to-reset-password/",
        },
    ),
    Event(
        "user.role_changed",
        "a user's role changes",
        ("user_id", "user_email", "old_role", "new_role", "changed_by"),
        example={
            "user_id": 5,
            "user_email": "user@example.com",
            "old_role": "subscriber",
            "new_role": "support_agent",
            "changed_by": 1,
        },
    ),
    Event(
        "agent.login",
        "a support agent logs in",
        ("agent_id", "agent_email", "ip_address", "user_agent"),
        example={
            "agent_id": 10,
            "agent_email": "agent@example.com",
            "ip_address": "203.0.113.7",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        },
    ),
)


class EventRegistry:
    """The events that can be emitted: the built-ins plus those registered at run time."""

    def __init__(self, events: tuple[Event, ...] = BUILTIN_EVENTS) -> None:
        self._events = {e.name: e for e in events}
        self._lock = threading.Lock()

    def register(
        self,
        name: str,
        description: str = "",
        fields: tuple[str, ...] = (),
        *,
        throttle_field: str | None = None,
    ) -> Event:
        """Add a custom event (the page's `webhook_events` filter); re-registering is a no-op."""
        check_name(name)
        event = Event(name, description or name, tuple(fields), throttle_field, custom=True)
        with self._lock:
            existing = self._events.get(name)
            if existing is not None and not existing.custom:
                return existing
            self._events[name] = event
        return event

    def get(self, name: str) -> Event:
        """The event called `name`, or an EventError naming it and the known ones."""
        check_name(name)
        try:
            return self._events[name]
        except KeyError:
            known = ", ".join(sorted(self._events))
            raise EventError(
                f"unknown event {name!r}: register it with shahihooks.register_event() "
                f"first (known events: {known})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(sorted(self._events.values(), key=lambda e: e.name))

    def __contains__(self, name: object) -> bool:
        return name in self._events


def check_name(name: object) -> str:
    """Return `name` if it looks like `resource.action`, else raise EventError."""
    if not isinstance(name, str) or not EVENT_NAME.match(name):
        raise EventError(
            f"malformed event name {name!r}: expected dotted lowercase words "
            "such as 'ticket.created' or 'invoice.paid'"
        )
    return name


registry = EventRegistry()


def register_event(
    name: str,
    description: str = "",
    fields: tuple[str, ...] = (),
    *,
    throttle_field: str | None = None,
) -> Event:
    """Register a custom event in the process-wide catalogue."""
    return registry.register(name, description, fields, throttle_field=throttle_field)
