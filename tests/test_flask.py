"""Flask: the extension reads app.config, emit is bound to it, and the receiver decorator
verifies, answers 401 and drops duplicates."""

from __future__ import annotations

import uuid

import flask
import pytest

import shahihooks
from examples import flask_receiver
from shahihooks.contrib.flask import Shahihooks
from tests.conftest import REDIS_URL, RUN, SECRET
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("worker")


def flask_app(ca_path: str, **config: object) -> flask.Flask:
    app = flask.Flask("test")
    app.config.update(
        SHAHIHOOKS_REDIS_URL=REDIS_URL,
        SHAHIHOOKS_SECRET=SECRET,
        SHAHIHOOKS_ALLOW_NETWORKS="127.0.0.0/8",
        SHAHIHOOKS_CA_BUNDLE=ca_path,
        SHAHIHOOKS_PREFIX=f"shtest{RUN}",
        SHAHIHOOKS_QUEUE=f"shtest{RUN}",
        **config,
    )
    return app


def test_extension_emits_with_the_apps_settings(settings, receiver: Receiver, ca) -> None:
    settings()
    p = f"/flask-{uuid.uuid4().hex[:8]}"
    app = flask_app(ca[1], SHAHIHOOKS_URLS=receiver.url(p))
    ext = Shahihooks()
    ext.init_app(app)
    assert app.extensions["shahihooks"] is ext
    (delivery,) = ext.emit("ticket.created", {"ticket_id": 9})
    (got,) = receiver.wait_for(p, 1)
    assert got.header("webhook-id") == delivery.id


def test_bad_config_value_names_the_config_key(ca) -> None:
    try:
        with pytest.raises(
            shahihooks.ConfigurationError, match=r"""app.config\["SHAHIHOOKS_TIMEOUT"\]='soon'"""
        ):
            Shahihooks(flask_app(ca[1], SHAHIHOOKS_TIMEOUT="soon"))
    finally:
        shahihooks.configure(shahihooks.Settings())


def test_receiver_accepts_a_real_delivery_rejects_tampering_and_drops_duplicates(
    settings, receiver: Receiver
) -> None:
    p = f"/flask-in-{uuid.uuid4().hex[:8]}"
    settings(urls=(receiver.url(p),))
    shahihooks.emit("ticket.status_changed", {"ticket_id": 5, "new_status": "pending"})
    (real,) = receiver.wait_for(p, 1)
    headers = {k: v for k, v in real.headers.items() if k.startswith(("webhook-", "x-shahi"))}
    client = flask_receiver.create_app(SECRET).test_client()
    flask_receiver.handled.clear()
    url = "/webhook/shahi-assist"
    first = client.post(url, data=real.body, headers=headers, content_type="application/json")
    assert first.status_code == 200
    assert first.get_json() == {"status": "success"}
    again = client.post(url, data=real.body, headers=headers, content_type="application/json")
    assert again.get_json()["status"] == "duplicate"
    assert flask_receiver.handled == [
        {"ticket.status_changed": {"ticket_id": 5, "new_status": "pending"}}
    ]
    bad = client.post(url, data=real.body + b" ", headers=headers, content_type="application/json")
    assert bad.status_code == 401
    assert bad.get_json()["error"] == "Invalid signature"


def test_a_failing_route_forgets_the_delivery_so_the_retry_is_processed(settings) -> None:
    settings()
    app = flask.Flask("failing")
    calls: list[int] = []

    @app.post("/in")
    @shahihooks.contrib.flask.webhook_receiver(SECRET)
    def hook() -> tuple[str, int]:
        calls.append(1)
        return ("busy", 503) if len(calls) == 1 else ("ok", 200)

    body = b'{"id":"evt_f-1","event":"ticket.created","data":{}}'
    headers = shahihooks.sign_headers(
        body, delivery_id=f"evt_{uuid.uuid4().hex}-1", event="ticket.created", secrets=SECRET
    )
    client = app.test_client()
    assert client.post("/in", data=body, headers=headers).status_code == 503
    assert client.post("/in", data=body, headers=headers).status_code == 200
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [
        ("shahihooks.contrib.flask", "flask", "shahihooks[flask]"),
        ("shahihooks.contrib.django", "django", "shahihooks[django]"),
    ],
)
def test_contrib_without_its_framework_names_the_extra(
    module: str, framework: str, extra: str
) -> None:
    import subprocess
    import sys

    code = f"import sys; sys.modules[{framework!r}] = None; import {module}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"ImportError: {module} needs" in result.stderr
    assert f"pip install '{extra}'" in result.stderr
