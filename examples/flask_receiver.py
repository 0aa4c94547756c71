"""A Flask app receiving shahihooks deliveries: the page's basic handler, in Python.

SHAHIHOOKS_SECRET=... flask --app examples.flask_receiver run
"""

from __future__ import annotations

from typing import Any

import flask

from shahihooks.contrib.flask import webhook_receiver

handled: list[dict[str, Any]] = []


def handle_ticket_created(data: dict[str, Any]) -> None:
    handled.append({"ticket.created": data})


def handle_status_changed(data: dict[str, Any]) -> None:
    handled.append({"ticket.status_changed": data})


HANDLERS = {"ticket.created": handle_ticket_created, "ticket.status_changed": handle_status_changed}


def create_app(secret: str | None = None) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.post("/webhook/shahi-assist")
    @webhook_receiver(secret)
    def webhook() -> dict[str, str]:
        payload = flask.g.webhook
        handler = HANDLERS.get(payload["event"])
        if handler is not None:  # unknown events are acknowledged and ignored
            handler(payload["data"])
        return {"status": "success"}

    return app
