"""Flask: `Shahihooks(app)` or `ext.init_app(app)`, reading `app.config["SHAHIHOOKS_*"]`.

hooks = Shahihooks()
def create_app():
    app = flask.Flask(__name__)
    app.config.from_prefixed_env()      # SHAHIHOOKS_URLS, SHAHIHOOKS_SECRET, ...
    hooks.init_app(app)                 # the app's settings live in app.extensions
    return app

hooks.emit("ticket.created", {"ticket_id": 123})   # with the settings of the current app

@app.post("/webhook")
@webhook_receiver()            # 401 on a bad signature; duplicates never get here
def hook():
    handle(flask.g.webhook)    # the verified payload
    return {"status": "success"}

Each app keeps its own settings in `app.extensions["shahihooks"]`; inside an app context
they are the settings every shahihooks function uses (`shahihooks.emit`, the receivers).
`flask --app APP shahihooks worker` runs a worker with the app's settings (and every other
shahihooks command with them too).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

try:
    import flask
    from flask.cli import with_appcontext
    from werkzeug.exceptions import RequestEntityTooLarge
except ImportError:  # pragma: no cover - exercised without Flask installed
    raise ImportError(
        "shahihooks.contrib.flask needs Flask: pip install 'shahihooks[flask]'"
    ) from None

import click

from shahihooks.cli import Commands, main
from shahihooks.emit import Delivery
from shahihooks.emit import emit as _emit
from shahihooks.receiving import Receiver, Seen, declared_too_large
from shahihooks.settings import Settings, add_source, configure

PREFIX = "SHAHIHOOKS_"
NAME = "shahihooks"


@dataclass(frozen=True)
class Installed:
    """What one app keeps in `app.extensions["shahihooks"]`."""

    extension: Shahihooks
    settings: Settings


class Shahihooks:
    """The Flask extension: each app's settings from its config, `emit` bound to them."""

    def __init__(self, app: flask.Flask | None = None) -> None:
        self._app = app  # only for use outside an app context, as Flask extensions do
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        values = {k[len(PREFIX) :]: v for k, v in app.config.items() if k.startswith(PREFIX)}
        settings = Settings.from_mapping(values, 'app.config["SHAHIHOOKS_{}"]')
        app.extensions[NAME] = Installed(self, settings)
        app.cli.add_command(flask_commands)
        add_source(_app_settings)

    def settings_for(self, app: flask.Flask | None = None) -> Settings:
        """The settings of `app`, else of the current app, else of the app given at init."""
        app = app or (flask.current_app if flask.has_app_context() else None)
        app = app or self._app
        if app is None:
            raise RuntimeError(
                "no Flask app: call this inside an app context (a request, or "
                "`with app.app_context():`), or give the app to Shahihooks(app)"
            )
        installed = app.extensions.get(NAME)
        if not isinstance(installed, Installed):
            raise RuntimeError(f"the app {app.name!r} was not initialised: call init_app(app)")
        return installed.settings

    def emit(self, event: str, data: Any, *, key: str | None = None) -> list[Delivery]:
        """`shahihooks.emit` with the current app's settings."""
        return _emit(event, data, key=key, settings=self.settings_for())


def _app_settings() -> Settings | None:
    """The current app's settings, inside the context of an app that has the extension."""
    if not flask.has_app_context():
        return None
    installed = flask.current_app.extensions.get(NAME)
    return installed.settings if isinstance(installed, Installed) else None


@click.group(NAME, cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@with_appcontext
def flask_commands() -> None:
    """shahihooks with this app's settings (app.config["SHAHIHOOKS_*"]).

    \b
    Examples:
      flask --app myproject shahihooks worker
      flask --app myproject shahihooks doctor
    """
    # the whole process (the worker's threads too) uses the app's settings
    configure(_app_settings() or Settings.from_env())


for _name, _command in main.commands.items():
    flask_commands.add_command(_command, _name)


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

    receiver = Receiver(secret, seen, max_body_bytes, standard_only)

    def decorate(route: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(route)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            def handler(payload: Any) -> flask.Response:
                flask.g.webhook = payload
                return flask.make_response(route(*args, **kwargs))

            return receiver.handle(
                functools.partial(read_bounded, flask.request),
                dict(flask.request.headers.items()),
                lambda status, body: (flask.jsonify(body), status),
                handler,
            )

        return wrapper

    return decorate
