"""Flower, run as `make flower` and the compose service run it (their task-list columns,
basic auth), read through its HTTP API: a delivered delivery is SUCCESS, a dead-lettered one
FAILURE with the reason, one waiting for a retry RETRY; nothing it returns holds a secret."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

import shahihooks
from tests.conftest import REDIS_URL, RUN, SECRET, clean_env, free_port, wait_until
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("worker")

ROOT = Path(__file__).resolve().parent.parent
LOGIN = ("flower-user", "flower-password-0123")


def makefile_columns() -> str:
    found = re.search(r"^FLOWER_COLUMNS := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert found, "the Makefile names Flower's task columns"
    return found.group(1)


def fetch(url: str, login: tuple[str, str] | None = LOGIN) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if login:
        token = base64.b64encode(":".join(login).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def get_json(url: str) -> object:
    status, body = fetch(url)
    return json.loads(body) if status == 200 else None


@pytest.fixture(scope="module")
def flower() -> Iterator[str]:
    port = free_port()
    env = clean_env(
        SHAHIHOOKS_REDIS_URL=REDIS_URL,
        SHAHIHOOKS_QUEUE=f"shtest{RUN}",
        FLOWER_BASIC_AUTH=":".join(LOGIN),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "shahihooks.app",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
            f"--tasks_columns={makefile_columns()}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: get_json(base + "/api/workers?refresh=1") is not None, 30, "flower")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def task_in_state(flower: str, delivery_id: str, state: str) -> dict[str, object] | None:
    tasks = get_json(f"{flower}/api/tasks?state={state}")
    task = tasks.get(delivery_id) if isinstance(tasks, dict) else None
    return task if isinstance(task, dict) else None


def test_the_makefile_and_compose_show_the_delivery_in_the_same_columns() -> None:
    columns = makefile_columns().split(",")
    assert "args" in columns, "args is the delivery: event → URL (attempt n)"
    assert "exception" in columns, "a dead letter's reason"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert f"--tasks_columns={makefile_columns()}" in compose["services"]["flower"]["entrypoint"]


def test_flower_needs_its_login(flower: str) -> None:
    assert fetch(flower + "/api/tasks", login=None)[0] == 401
    assert fetch(flower + "/api/tasks", login=("flower-user", "wrong"))[0] == 401
    assert fetch(flower + "/api/tasks")[0] == 200


def test_a_delivered_delivery_is_success_with_the_delivery_in_its_columns(
    settings, receiver: Receiver, flower: str
) -> None:
    path = f"/flower-ok-{uuid.uuid4().hex[:8]}"
    settings(urls=(receiver.url(path),))
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 42, "title": "Hi"})
    receiver.wait_for(path, 1)
    task = wait_until(lambda: task_in_state(flower, delivery.id, "SUCCESS"), 20, "SUCCESS")
    assert isinstance(task, dict)
    assert task["name"] == "shahihooks.deliver"
    assert task["args"] == f"ticket.created → {receiver.url(path)} (attempt 1)"
    status, page = fetch(flower + "/tasks")
    assert status == 200
    headers = re.findall(r"<th[^>]*>\s*([^<]+?)\s*</th>", page.decode())
    assert "args" in headers
    assert "Exception" in headers
    everything = json.dumps(get_json(flower + "/api/tasks"))
    assert delivery.id in everything
    assert SECRET not in everything


def test_a_dead_lettered_delivery_is_failure_with_its_reason_and_is_not_requeued(
    settings, receiver: Receiver, flower: str, redis_client: redis.Redis
) -> None:
    path = f"/flower-dead-{uuid.uuid4().hex[:8]}"
    s = settings(urls=(receiver.url(path),), retry_schedule_s=(0.2,))
    receiver.rule(path, lambda n: 500)
    (delivery,) = shahihooks.emit("ticket.closed", {"ticket_id": 7})
    task = wait_until(lambda: task_in_state(flower, delivery.id, "FAILURE"), 20, "FAILURE")
    assert isinstance(task, dict)
    assert "DeliveryError" in str(task["exception"])
    assert "dead-lettered" in str(task["exception"])
    assert "HTTP 500" in str(task["exception"])
    assert task["args"] == f"ticket.closed → {receiver.url(path)} (attempt 2)"
    assert delivery.id not in json.dumps(get_json(flower + "/api/tasks?state=SUCCESS"))
    # kept as a dead letter, not lost; its message acknowledged, not requeued
    assert redis_client.exists(f"{s.prefix}:dead:{delivery.id}")
    time.sleep(1.5)
    assert len(receiver.requests_to(path)) == 2
    assert delivery.id.encode() not in b"".join(redis_client.lrange(s.queue, 0, -1))


def test_a_delivery_waiting_for_its_retry_is_retry(
    settings, receiver: Receiver, flower: str, redis_client: redis.Redis
) -> None:
    path = f"/flower-retry-{uuid.uuid4().hex[:8]}"
    s = settings(urls=(receiver.url(path),), retry_schedule_s=(60,))
    receiver.rule(path, lambda n: 503)
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 8})
    task = wait_until(lambda: task_in_state(flower, delivery.id, "RETRY"), 20, "RETRY")
    assert isinstance(task, dict)
    assert "HTTP 503" in str(task["exception"])
    # the retry waits in Redis's schedule, not in a requeued message
    due_ms = redis_client.zscore(f"{s.prefix}:schedule", delivery.id)
    assert due_ms is not None
    assert due_ms / 1000 > time.time() + 50
    time.sleep(1.5)
    assert len(receiver.requests_to(path)) == 1
    assert delivery.id.encode() not in b"".join(redis_client.lrange(s.queue, 0, -1))


def test_a_delivery_delivered_after_a_retry_shows_no_stale_exception(
    settings, receiver: Receiver, flower: str
) -> None:
    path = f"/flower-then-ok-{uuid.uuid4().hex[:8]}"
    settings(urls=(receiver.url(path),), retry_schedule_s=(0.5,))
    receiver.rule(path, lambda n: 503 if n == 1 else 200)
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 9})
    task = wait_until(lambda: task_in_state(flower, delivery.id, "SUCCESS"), 20, "SUCCESS")
    assert isinstance(task, dict)
    assert task["args"] == f"ticket.created → {receiver.url(path)} (attempt 2)"
    assert not task["exception"], task["exception"]  # not the first attempt's Retry(...)
