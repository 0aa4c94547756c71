"""A Flask project as the README sets one up: one extension, an app factory.

`flask --app tests.flask_project shahihooks worker` runs its worker; the tests give the
factory its configuration in TEST_FLASK_CONFIG (JSON), as a project would from its files.
"""

from __future__ import annotations

import json
import os
from typing import Any

import flask

from shahihooks.contrib.flask import Shahihooks

webhooks = Shahihooks()


def create_app(config: dict[str, Any] | None = None) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(
        json.loads(os.environ.get("TEST_FLASK_CONFIG", "{}")) if config is None else config
    )
    webhooks.init_app(app)

    @app.post("/tickets/<int:ticket_id>")
    def create_ticket(ticket_id: int) -> tuple[dict[str, Any], int]:
        (delivery,) = webhooks.emit("ticket.created", {"ticket_id": ticket_id})
        return {"delivery": delivery.id, "url": delivery.url}, 201

    return app
