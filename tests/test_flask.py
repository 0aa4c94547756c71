"""Flask: each app's settings from its config, kept in app.extensions (two apps, one
extension); the worker started with `flask shahihooks worker` takes the app's configuration;
the receiver decorator verifies, answers 401 and drops duplicates."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import flask
import pytest

import shahihooks
from examples import flask_receiver
from shahihooks.contrib.flask import Shahihooks
from tests import flask_project
from tests.conftest import REDIS_URL, RUN, SECRET, clean_env
from tests.receiver import Receiver

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.usefixtures("worker")


def flask_app(ca_path: str, **config: object) -> flask.Flask:
    app = flask.Flask("test")
    app.config.update(
        {
            "SHAHIHOOKS_REDIS_URL": REDIS_URL,
            "SHAHIHOOKS_SECRET": SECRET,
            "SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
            "SHAHIHOOKS_CA_BUNDLE": ca_path,
            "SHAHIHOOKS_PREFIX": f"shtest{RUN}",
            "SHAHIHOOKS_QUEUE": f"shtest{RUN}",
            **config,
        }
    )
    return app


def test_extension_emits_with_the_apps_settings(settings, receiver: Receiver, ca) -> None:
    settings()
    p = f"/flask-{uuid.uuid4().hex[:8]}"
    app = flask_app(ca[1], SHAHIHOOKS_URLS=receiver.url(p))
    ext = Shahihooks()
    ext.init_app(app)
    state = app.extensions["shahihooks"]
    assert state.extension is ext
    assert state.settings.urls == (receiver.url(p),)
    with app.app_context():
        (delivery,) = ext.emit("ticket.created", {"ticket_id": 9})
    (got,) = receiver.wait_for(p, 1)
    assert got.header("webhook-id") == delivery.id


def test_two_apps_with_one_extension_each_emit_with_their_own_settings(
    settings, receiver: Receiver, ca
) -> None:
    s = settings(urls=())
    ext = Shahihooks()
    paths = {name: f"/flask-{name}-{uuid.uuid4().hex[:8]}" for name in ("a", "b")}
    apps = {
        name: flask_app(
            ca[1], SHAHIHOOKS_URLS=receiver.url(p), SHAHIHOOKS_SITE_URL=f"https://{name}.example"
        )
        for name, p in paths.items()
    }
    for app in apps.values():
        ext.init_app(app)
    with apps["a"].test_request_context():
        (a1,) = ext.emit("ticket.created", {"ticket_id": 1})
        (a2,) = shahihooks.emit("ticket.created", {"ticket_id": 2})  # the app's, in its context
    with apps["b"].app_context():
        (b1,) = ext.emit("ticket.created", {"ticket_id": 3})
    assert {a1.url, a2.url} == {receiver.url(paths["a"])}
    assert b1.url == receiver.url(paths["b"])
    got = receiver.wait_for(paths["a"], 2) + receiver.wait_for(paths["b"], 1)
    sent = {
        p["data"]["ticket_id"]: p["site_url"]
        for p in (shahihooks.verify(g.body, g.headers, SECRET) for g in got)
    }
    assert sent == {1: "https://a.example", 2: "https://a.example", 3: "https://b.example"}
    assert shahihooks.settings.current() == s, "outside the apps: the process's settings"


def test_emit_outside_an_app_context_says_what_to_do(ca) -> None:
    ext = Shahihooks()
    ext.init_app(flask_app(ca[1]))
    with pytest.raises(RuntimeError, match="inside an app context"):
        ext.emit("ticket.created", {"ticket_id": 1})
    bound = flask_app(ca[1], SHAHIHOOKS_SITE_URL="https://bound.example")
    assert Shahihooks(bound).settings_for().site_url == "https://bound.example"


def test_the_worker_takes_the_apps_configuration_from_its_factory(
    receiver: Receiver, ca, redis_client
) -> None:
    path = f"/flask-worker-{uuid.uuid4().hex[:8]}"
    prefix = f"flask{RUN}"
    config = {
        "SHAHIHOOKS_REDIS_URL": REDIS_URL,
        "SHAHIHOOKS_SECRET": SECRET,
        "SHAHIHOOKS_URLS": receiver.url(path),
        "SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
        "SHAHIHOOKS_CA_BUNDLE": ca[1],
        "SHAHIHOOKS_PREFIX": prefix,
        "SHAHIHOOKS_QUEUE": prefix,
    }
    env = clean_env(TEST_FLASK_CONFIG=json.dumps(config))
    flask_cli = [sys.executable, "-m", "flask", "--app", "tests.flask_project", "shahihooks"]
    doctor = subprocess.run(
        [*flask_cli, "doctor", "--no-worker-check", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert any(receiver.url(path) in c["what"] for c in json.loads(doctor.stdout)), doctor.stderr
    worker = subprocess.Popen(
        [
            *flask_cli,
            "worker",
            "--processes",
            "1",
            "--concurrency",
            "2",
            "--without-mingle",
            "--without-gossip",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        app = flask_project.create_app(config)
        reply = app.test_client().post("/tickets/5")
        assert reply.status_code == 201
        (got,) = receiver.wait_for(path, 1, timeout=30)
        assert got.header("webhook-id") == reply.get_json()["delivery"]
        assert shahihooks.verify(got.body, got.headers, SECRET)["data"] == {"ticket_id": 5}
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        names = list(redis_client.scan_iter(match=f"{prefix}*", count=1000))
        if names:
            redis_client.delete(*names)


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


def test_a_malformed_timestamp_is_answered_401_not_500() -> None:
    client = flask_receiver.create_app(SECRET).test_client()
    headers = {
        "webhook-id": "evt_x-1",
        "webhook-timestamp": "9" * 400,
        "webhook-signature": "v1,AAAA",
    }
    answer = client.post(
        "/webhook/shahi-assist", data=b"{}", headers=headers, content_type="application/json"
    )
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "Invalid signature"


def test_two_apps_with_different_secrets_and_one_worker_never_cross_sign(
    settings, receiver: Receiver, ca
) -> None:
    from shahihooks import dead
    from tests.conftest import wait_until

    s = settings()  # the worker runs with app A's settings (SECRET)
    a_path, b_path = f"/app-a-{uuid.uuid4().hex[:8]}", f"/app-b-{uuid.uuid4().hex[:8]}"
    other = "app-b-secret-0123456789abcdef"
    app_a = flask_app(ca[1], SHAHIHOOKS_URLS=receiver.url(a_path))
    app_b = flask_app(ca[1], SHAHIHOOKS_URLS=receiver.url(b_path), SHAHIHOOKS_SECRET=other)
    ext = Shahihooks()
    ext.init_app(app_a)
    ext.init_app(app_b)
    with app_b.app_context():
        (of_b,) = ext.emit("ticket.created", {"ticket_id": 2})
    with app_a.app_context():
        (of_a,) = ext.emit("ticket.created", {"ticket_id": 1})
    (got,) = receiver.wait_for(a_path, 1)
    assert shahihooks.verify(got.body, got.headers, SECRET)["id"] == of_a.id
    # app B's delivery is never signed with app A's secret: dead-lettered, replayable
    wait_until(lambda: dead.get(of_b.id, s), what="app B's delivery dead-lettered")
    letter = dead.get(of_b.id, s)
    assert letter is not None
    assert "emitted under settings whose secret" in letter.reason
    assert receiver.requests_to(b_path) == []
    # and app B's doctor says so before anything dies
    with app_b.app_context():
        from shahihooks import doctor

        wait_until(
            lambda: any(
                not c.ok and "no running worker signs with this app's secret" in c.what
                for c in doctor.run(shahihooks.settings.current(), ping_workers=False)
            ),
            what="doctor's check",
        )
