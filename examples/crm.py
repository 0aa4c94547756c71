"""The page's CRM integration: each new ticket's author is synced as a CRM contact.

Set CRM_API_URL and CRM_API_KEY. Runs in the worker as a per-event action (retried, logged,
dead-lettered like any delivery).
"""

from __future__ import annotations

import os
from typing import Any

import requests

from shahihooks import hooks


def contact_for(payload: dict[str, Any]) -> dict[str, Any]:
    data = payload["data"]
    return {
        "email": data["author_email"],
        "ticket_id": data["ticket_id"],
        "status": data.get("status", ""),
    }


@hooks.action("ticket.created", name="crm")
def sync_to_crm(payload: dict[str, Any]) -> None:
    response = requests.post(
        os.environ["CRM_API_URL"],
        json=contact_for(payload),
        headers={"Authorization": f"Bearer {os.environ['CRM_API_KEY']}"},
        timeout=10,
    )
    response.raise_for_status()
