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
    from werkzeug.exceptions import RequestEntityTooLarge
except ImportError:  # pragma: no cover - exercised without Flask installed
    raise ImportError(
        "shahihooks.contrib.flask needs Flask: pip install 'shahihooks[flask]'"
    ) from None

from shahihooks.emit import Delivery
from shahihooks.emit import emit as _emit
from shahihooks.receiving import Seen, body_limit, declared_too_large, receive
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


def read_bounded(request: flask.Request, limit: int) -> bytes | None:
    """The request body if it is at most `limit` bytes (None if more); a chunked body is
    cut off by Werkzeug past the limit. The route can still use `request.get_data()`."""
    if declared_too_large(request.headers.get("Content-Length"), limit):
        return None
    # one byte over the limit tells a body at the limit from a longer one cut off there
    request.max_content_length = limit + 1
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        return None
    return body if len(body) <= limit else None


def webhook_receiver(
    secret: str | Sequence[str] | None = None,
    seen: Seen | None = None,
    *,
    max_body_bytes: int | None = None,
    standard_only: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Verify each delivery, answer 401 to a bad one and 413 to a too large one, drop
    duplicates.

    The body is bounded by `max_body_bytes` (default SHAHIHOOKS_MAX_BODY_BYTES) before it
    is read. Any `webhook-*` header means the Standard Webhooks headers must verify;
    `standard_only=True` refuses deliveries signed by the page's header alone. The route
    gets the verified payload as `flask.g.webhook`. A delivery whose route fails (raises
    or answers 4xx/5xx) is forgotten, so the sender's retry is processed.
    """

    def decorate(route: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(route)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = flask.request
            limit = body_limit(max_body_bytes)
            verdict = receive(
                read_bounded(request, limit),
                dict(request.headers.items()),
                secret,
                seen,
                max_body_bytes=limit,
                standard_only=standard_only,
            )
            if verdict.reply is not None:
                return flask.jsonify(verdict.reply[1]), verdict.reply[0]
            flask.g.webhook = verdict.payload
            return verdict.run(
                lambda: flask.make_response(route(*args, **kwargs)), lambda r: r.status_code
            )

        return wrapper

    return decorate
