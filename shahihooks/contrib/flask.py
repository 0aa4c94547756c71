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
from shahihooks.receiving import Seen, receive
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
            verdict = receive(request.get_data(), dict(request.headers.items()), secret, seen)
            if verdict.reply is not None:
                return flask.jsonify(verdict.reply[1]), verdict.reply[0]
            flask.g.webhook = verdict.payload
            return verdict.run(
                lambda: flask.make_response(route(*args, **kwargs)), lambda r: r.status_code
            )

        return wrapper

    return decorate
