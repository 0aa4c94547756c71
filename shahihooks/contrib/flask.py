"""Flask: `Shahihooks(app)` or `ext.init_app(app)`, reading `app.config["SHAHIHOOKS_*"]`.

hooks = Shahihooks(app)
hooks.emit("ticket.created", {"ticket_id": 123})

@app.post("/webhook")
@webhook_receiver()            # 401 on a bad signature; duplicates never get here
def hook():
    handle(flask.g.webhook)    # the verified payload
    return {"status": "success"}
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

try:
    import flask
except ImportError:  # pragma: no cover - exercised without Flask installed
    raise ImportError(
        "shahihooks.contrib.flask needs Flask: pip install 'shahihooks[flask]'"
    ) from None

from shahihooks.emit import Delivery
from shahihooks.emit import emit as _emit
from shahihooks.errors import VerificationError
from shahihooks.receiving import Seen, check, delivery_id_of, redis_seen, secrets_for
from shahihooks.settings import Settings, configure

PREFIX = "SHAHIHOOKS_"


class Shahihooks:
    """The Flask extension: settings from the app's config, `emit` bound to them."""

    def __init__(self, app: flask.Flask | None = None) -> None:
        self.settings: Settings | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        values = {k[len(PREFIX) :]: v for k, v in app.config.items() if k.startswith(PREFIX)}
        self.settings = Settings.from_mapping(values, 'app.config["SHAHIHOOKS_{}"]')
        configure(self.settings)
        app.extensions["shahihooks"] = self

    def emit(self, event: str, data: Any, *, key: str | None = None) -> list[Delivery]:
        return _emit(event, data, key=key, settings=self.settings)


def webhook_receiver(
    secret: str | Sequence[str] | None = None, seen: Seen | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Verify each delivery (either scheme), answer 401 to a bad one, drop duplicates.

    The route gets the verified payload as `flask.g.webhook`. A delivery whose route fails
    (raises or answers 4xx/5xx) is forgotten, so the sender's retry is processed.
    """

    def decorate(route: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(route)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = flask.request
            headers = dict(request.headers.items())
            try:
                payload = check(request.get_data(), headers, secrets_for(secret))
            except VerificationError as exc:
                return flask.jsonify(error="Invalid signature", detail=str(exc)), 401
            remember = seen or redis_seen()
            delivery_id = delivery_id_of(headers, payload)
            if delivery_id and not remember.first(delivery_id):
                return flask.jsonify(status="duplicate", id=delivery_id)
            flask.g.webhook = payload
            try:
                response = flask.make_response(route(*args, **kwargs))
            except Exception:
                remember.forget(delivery_id)
                raise
            if response.status_code >= 400 and delivery_id:
                remember.forget(delivery_id)
            return response

        return wrapper

    return decorate
