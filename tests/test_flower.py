"""Flower, started against the test broker, shows a delivered task by its readable name
and arguments, and nothing it returns contains a secret."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

import shahihooks
from tests.conftest import REDIS_URL, RUN, SECRET, wait_until
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("worker")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> object:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


@pytest.fixture
def flower() -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "SHAHIHOOKS_REDIS_URL": REDIS_URL,
        "SHAHIHOOKS_QUEUE": f"shtest{RUN}",
        "FLOWER_UNAUTHENTICATED_API": "true",
    }
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


def test_flower_shows_a_delivered_task_readably_and_without_secrets(
    settings, receiver: Receiver, flower: str
) -> None:
    path = f"/flower-{uuid.uuid4().hex[:8]}"
    settings(urls=(receiver.url(path),))
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 42, "title": "Hi"})
    receiver.wait_for(path, 1)

    def succeeded() -> object:
        info = get_json(flower + "/api/tasks")
        task = (info or {}).get(delivery.id) if isinstance(info, dict) else None
        return task if task and task.get("state") == "SUCCESS" else None

    task = wait_until(succeeded, 20, "the task in flower")
    assert isinstance(task, dict)
    assert task["name"] == "shahihooks.deliver"
    assert task["args"] == f"ticket.created → {receiver.url(path)} (attempt 1)"
    everything = json.dumps(get_json(flower + "/api/tasks"))
    assert delivery.id in everything
    assert SECRET not in everything
