"""The page's Slack integration: each new ticket becomes a Slack message.

Registered as a per-event action, it runs in the worker with shahihooks' retries and dead
letters. Set SLACK_WEBHOOK_URL to your Slack incoming-webhook URL.

    import examples.slack  # in a module both the app and the worker import
"""

from __future__ import annotations

import os
from typing import Any

import requests

from shahihooks import hooks


def slack_message(payload: dict[str, Any]) -> dict[str, Any]:
    """The Slack message for a ticket.created payload: title, link and status."""
    data = payload["data"]
    return {
        "text": f"New ticket: {data['title']}",
        "attachments": [
            {
                "title": data["title"],
                "title_link": data.get("ticket_url", ""),
                "fields": [{"title": "Status", "value": data.get("status", ""), "short": True}],
            }
        ],
    }


@hooks.action("ticket.created", name="slack")
def send_to_slack(payload: dict[str, Any]) -> None:
    """Post the message; an error raises, so shahihooks retries it on its schedule."""
    response = requests.post(
        os.environ["SLACK_WEBHOOK_URL"], json=slack_message(payload), timeout=10
    )
    response.raise_for_status()
