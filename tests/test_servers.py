"""What shahihooks expects of its servers, said at start and by doctor: a Redis that
persists (a warning), never a Redis Cluster (refused), a Celery configuration under which
workers can read every delivery, a RabbitMQ queue that lets a worker hold one attempt."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from kombu import Queue

import shahihooks
from shahihooks.celeryconf import celery_config, check_celery_config
from shahihooks.cli import main
from shahihooks.errors import ConfigurationError
from shahihooks.localcluster import LocalNodes
from shahihooks.worker import check_worker
from tests.conftest import free_port, wait_until
from tests.faults import World
from tests.receiver import Receiver


def doctor_checks() -> list[dict[str, object]]:
    result = CliRunner().invoke(main, ["doctor", "--json", "--no-worker-check"])
    checks: list[dict[str, object]] = json.loads(result.stdout)
    return checks


def test_doctor_warns_when_redis_does_not_persist(settings) -> None:
    settings()  # the machine's Redis runs with appendonly no
    (check,) = [c for c in doctor_checks() if "persist" in str(c["what"])]
    assert check["ok"] is False
    assert "without append-only persistence" in str(check["what"])
    assert "appendonly yes" in str(check["fix"])


def test_doctor_is_content_with_an_append_only_redis(settings, world: World) -> None:
    settings(redis_url=world.url, broker_url=world.url)
    (check,) = [c for c in doctor_checks() if "persist" in str(c["what"])]
    assert check["ok"] is True
    assert "appendfsync always" in str(check["what"])


def test_a_worker_warns_at_start_when_redis_does_not_persist(
    world: World, tmp_path, receiver: Receiver
) -> None:
    port = free_port()
    plain = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        world.settings["SHAHIHOOKS_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        worker = world.worker()
        log = Path(world.folder) / "workers.log"
        wait_until(lambda: "append-only" in log.read_text(), timeout=20, what="the warning")
        assert "without append-only persistence" in log.read_text()
        assert worker.poll() is None, "a warning, not a refusal"
    finally:
        plain.kill()
        plain.wait()


@pytest.fixture
def cluster() -> Iterator[str]:
    """The URL of one cluster-enabled node (its slots unassigned: a Cluster all the same)."""
    nodes = LocalNodes()
    try:
        (port,) = nodes.start_nodes(1)
        url = f"redis://127.0.0.1:{port}/0"
        wait_until(lambda: _answers(url), what="the cluster node")
        yield url
    finally:
        nodes.close(signal.SIGKILL)


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url).ping())
    except redis.ConnectionError:
        return False


def test_a_redis_cluster_is_refused_with_a_clear_message(settings, cluster: str) -> None:
    s = settings(redis_url=cluster, urls=("https://127.0.0.1:9/x",))
    with pytest.raises(ConfigurationError, match="is a Redis Cluster, which shahihooks does not"):
        shahihooks.emit("ticket.created", {"ticket_id": 1})
    with pytest.raises(ConfigurationError, match="CROSSSLOT"):
        check_worker(s)
    (check,) = [c for c in doctor_checks() if "Cluster" in str(c["what"])]
    assert check["ok"] is False


def test_a_worker_that_would_discard_deliveries_refuses_to_start() -> None:
    settings = shahihooks.Settings()
    conf = {**celery_config(settings), "task_serializer": "pickle"}
    with pytest.raises(ConfigurationError, match=r"accept_content \['json'\] does not accept"):
        check_celery_config(conf, settings)
    both = {**conf, "accept_content": ["application/json", "pickle"]}
    check_celery_config(both, settings)


def test_a_rabbitmq_queue_must_let_a_worker_hold_a_message_two_attempts() -> None:
    settings = shahihooks.Settings()
    short = Queue(settings.queue, queue_arguments={"x-consumer-timeout": 40_000})
    conf = {
        **celery_config(settings),
        "broker_url": "amqp://guest:guest@127.0.0.1:5672//",
        "task_queues": [short],
    }
    with pytest.raises(ConfigurationError, match="x-consumer-timeout 40000 ms"):
        check_celery_config(conf, settings)
    conf["task_queues"] = [Queue(settings.queue, queue_arguments={"x-consumer-timeout": 80_000})]
    check_celery_config(conf, settings)
