"""The transactional outbox, as a Django project lives it: a view commits a ticket while
Redis is stopped, answers 201, and the project's worker (`manage.py shahihooks worker`, a
subprocess on the same SQLite database) delivers the event once Redis is started again.

A private redis-server (tests/faults.py `World`), the test HTTPS receiver, and the settings
passed to both sides as the project's SHAHIHOOKS dict (override_settings in this process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction
from django.test import Client, override_settings
from django.utils import timezone

import shahihooks
from shahihooks.contrib.django import emit, outbox
from shahihooks.contrib.django.models import OutboxEvent
from tests.conftest import LOOPBACK, RUN, SECRET, wait_until
from tests.django_project.tickets.models import Ticket
from tests.faults import ROOT, World
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)
MANAGE = str(ROOT / "tests" / "django_project" / "manage.py")
WORKER_OPTIONS = [
    "--processes",
    "1",
    "--concurrency",
    "4",
    "--loglevel",
    "INFO",
    "--without-mingle",
    "--without-gossip",
]


class Project:
    """The Django project's side: its SHAHIHOOKS dict, its worker, its manage.py."""

    def __init__(self, world: World, receiver: Receiver, ca_path: str, db: str) -> None:
        self.world, self.receiver, self.db = world, receiver, db
        self.path = f"/outbox-{uuid.uuid4().hex[:8]}"
        self.dict: dict[str, Any] = {
            "REDIS_URL": world.url,
            "URLS": [receiver.url(self.path)],
            "SECRET": SECRET,
            "ALLOW_NETWORKS": [str(n) for n in LOOPBACK],
            "CA_BUNDLE": ca_path,
            "PREFIX": f"outbox{RUN}",
            "QUEUE": f"outbox{RUN}",
            "RETRY_SCHEDULE": [1, 1, 1],
            "RATE_LIMIT": 0,
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        return {
            **self.world.env(),
            "DJANGO_SETTINGS_MODULE": "tests.django_project.settings",
            "SHAHIHOOKS_TEST_DJANGO": json.dumps(self.dict),
            # the test database's file: the worker's own NAME (it runs no tests)
            "SHAHIHOOKS_TEST_DJANGO_DB": self.db,
        }

    def worker(self, command: tuple[str, ...] = (MANAGE, "shahihooks")) -> subprocess.Popen[bytes]:
        """The project's worker: `manage.py shahihooks worker`, or another command line."""
        log = open(os.path.join(self.world.folder, "django-worker.log"), "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, *command, "worker", *WORKER_OPTIONS],
            env=self.env(),
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )
        self.procs.append(proc)
        return proc

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, MANAGE, *args],
            env=self.env(),
            cwd="/",  # manage.py finds its project wherever it is run from
            capture_output=True,
            text=True,
            timeout=60,
        )

    def delivered(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        got = self.receiver.wait_for(self.path, count, timeout)
        return [shahihooks.verify(r.body, r.headers, SECRET) for r in got]

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def project(receiver: Receiver, ca: tuple[object, str]) -> Iterator[Project]:
    world = World(receiver, ca[1])
    world.start_redis()
    db = str(connection.settings_dict["NAME"])
    assert db.endswith(".test"), db
    project = Project(world, receiver, ca[1], db)
    try:
        with override_settings(SHAHIHOOKS=project.dict):
            yield project
    finally:
        project.close()
        world.close()
        shahihooks.configure(shahihooks.Settings())


def rows() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.order_by("created_at"))


def test_a_ticket_committed_while_redis_is_down_is_delivered_when_it_is_back(
    project: Project,
) -> None:
    project.worker()
    client = Client()
    first = client.post("/tickets", {"title": "while Redis is up"})
    assert first.status_code == 201
    (up,) = project.delivered(1)
    assert up["data"]["ticket_id"] == first.json()["ticket_id"]
    (pushed,) = rows()  # deleted by the next emit's transaction, free of a COMMIT of its own
    assert (pushed.attempts, pushed.last_error) == (0, "")

    project.world.stop_redis()
    before = int(time.time())
    second = client.post("/tickets", {"title": "while Redis is down"})  # raises if the view did
    assert second.status_code == 201
    ticket_id = second.json()["ticket_id"]
    assert Ticket.objects.filter(pk=ticket_id).exists()
    (waiting,) = rows()
    assert waiting.pk != pushed.pk
    assert waiting.event == "ticket.created"
    assert json.loads(waiting.data) == {"ticket_id": ticket_id, "title": "while Redis is down"}
    time.sleep(2)
    assert len(project.receiver.requests_to(project.path)) == 1

    project.world.start_redis()
    back = time.time()
    up, down = project.delivered(2)
    assert down["data"] == {"ticket_id": ticket_id, "title": "while Redis is down"}
    assert before <= down["timestamp"] <= back, "the time of the event, not of its relay"
    wait_until(lambda: rows() == [], 10, "the outbox emptied")
    time.sleep(1)
    assert len(project.receiver.requests_to(project.path)) == 2


def test_outside_a_transaction_an_event_is_kept_only_while_redis_is_down(
    project: Project,
) -> None:
    emit("ticket.closed", {"ticket_id": 1})
    assert rows() == [], "Redis took it: nothing written"
    project.world.stop_redis()
    emit("ticket.closed", {"ticket_id": 2})
    (waiting,) = rows()
    assert json.loads(waiting.data) == {"ticket_id": 2}
    assert waiting.last_error.startswith("Redis unreachable")

    listed = project.manage("shahihooks", "outbox", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["event"] for r in json.loads(listed.stdout)] == ["ticket.closed"]
    refused = project.manage("shahihooks", "outbox", "--relay")
    assert "pushed 0" in refused.stderr
    assert "Redis is unreachable" in refused.stderr
    assert len(rows()) == 1

    project.world.start_redis()
    relayed = project.manage("shahihooks", "outbox", "--relay")
    assert relayed.returncode == 0, relayed.stderr
    assert "pushed 1, failed 0" in relayed.stderr
    assert "the outbox is empty" in relayed.stdout
    assert rows() == []
    project.worker()
    got = project.delivered(2)
    assert sorted(p["data"]["ticket_id"] for p in got) == [1, 2]


def test_shahihooks_worker_with_django_settings_module_runs_the_relay(project: Project) -> None:
    """Celery's Django fix-up sets Django up (and so adds the relay) before the worker
    builds its blueprint."""
    project.world.stop_redis()
    emit("ticket.assigned", {"ticket_id": 4, "agent_id": 10})
    assert len(rows()) == 1
    project.world.start_redis()
    project.worker(("-m", "shahihooks"))
    (got,) = project.delivered(1)
    assert got["data"] == {"ticket_id": 4, "agent_id": 10}
    wait_until(lambda: rows() == [], 10, "the outbox emptied")


def test_a_rolled_back_transaction_leaves_nothing_to_relay(project: Project) -> None:
    project.world.stop_redis()
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012
        Ticket.objects.create(title="never")
        emit("ticket.created", {"ticket_id": 0})
        assert len(rows()) == 1
        raise RuntimeError("rollback")
    assert rows() == []


def test_relays_racing_over_the_same_rows_send_each_event_once(project: Project) -> None:
    project.world.stop_redis()
    for i in range(20):
        with transaction.atomic():
            emit("ticket.created", {"ticket_id": i})
    assert len(rows()) == 20
    OutboxEvent.objects.update(next_try_at=timezone.now())  # all due at once
    project.world.start_redis()
    project.worker()  # the project's relay, racing these two

    def relay() -> None:
        for _ in range(5):
            try:
                outbox.relay()
            except OperationalError as exc:  # SQLite lets one writer in: a relay that
                if "locked" not in str(exc):  # meets the lock tries on its next pass
                    raise

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    got = project.delivered(20)
    wait_until(lambda: rows() == [], 10, "the outbox emptied")
    time.sleep(2)
    received = project.receiver.requests_to(project.path)
    assert len(received) == 20, "each event once"
    assert sorted(p["data"]["ticket_id"] for p in got) == list(range(20))


def test_manage_py_shahihooks_doctor_reads_the_projects_settings(project: Project) -> None:
    result = project.manage("shahihooks", "doctor", "--no-worker-check", "--json")
    checks = {c["what"]: c["ok"] for c in json.loads(result.stdout)}
    url = project.receiver.url(project.path)
    assert any(w.startswith(f"Redis reachable at {project.world.url}") for w in checks)
    assert any(url in w and "TLS certificate valid" in w and ok for w, ok in checks.items())
    assert "no endpoint configured" not in checks


def test_the_shahihooks_command_with_django_settings_module_reads_the_projects_settings(
    project: Project,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shahihooks", "doctor", "--no-worker-check", "--json"],
        env=project.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    checks = [c["what"] for c in json.loads(result.stdout)]
    assert any(project.receiver.url(project.path) in w for w in checks), checks
    assert "no endpoint configured" not in checks
