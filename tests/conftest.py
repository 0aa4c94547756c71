"""Fixtures: a real Redis, a real HTTPS receiver, a real Celery worker (threads pool)."""

from __future__ import annotations

import ipaddress
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
import trustme

import shahihooks
from shahihooks.endpoints import forget_cached
from shahihooks.keys import Keys
from shahihooks.settings import Settings
from tests.receiver import Receiver, start_receiver

if TYPE_CHECKING:
    from tests.faults import World

REDIS_URL = os.environ.get("SHAHIHOOKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SECRET = "test-secret-0123456789"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
RUN = uuid.uuid4().hex[:8]


def wait_until(check: Callable[[], object], timeout: float = 20.0, what: str = "") -> object:
    """Poll `check` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")


class ScriptKeys(Keys):
    """Keys the Lua writes and no Python code reads: what tests look at to see a delivery
    done, or a rate window counted (tests/test_keys.py checks the Lua builds these names)."""

    def rate(self, tag: str, window: int) -> str:
        return self._key("rate", tag, window)

    def done(self, delivery_id: str) -> str:
        return self._key("done", delivery_id)

    def held(self, tag: str) -> str:
        return self._key("held", tag)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connects(port: int, timeout: float = 0.2) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: no SHAHIHOOKS_* and no DJANGO_SETTINGS_MODULE (which
    pytest-django sets, and which would make shahihooks read the test project's settings)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SHAHIHOOKS_") and k != "DJANGO_SETTINGS_MODULE"
    }
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    return client


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, str(path)


@pytest.fixture(scope="session")
def receiver_server(ca: tuple[trustme.CA, str]) -> Receiver:
    return start_receiver(ca[0], ca[1], ("127.0.0.1", "localhost"))


@pytest.fixture
def receiver(receiver_server: Receiver) -> Iterator[Receiver]:
    receiver_server.clear()
    yield receiver_server
    receiver_server.clear()


def base_settings(ca_path: str, **changes: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": REDIS_URL,
        "secret": SECRET,
        "allow_networks": LOOPBACK,
        "ca_bundle": ca_path,
        "retry_schedule_s": (1, 1, 1),
        "retry_after_max_s": 10,
        "rate_limit": 1000,
        "rate_window_s": 30,
        "timeout_s": 5,
        "prefix": f"shtest{RUN}",
        "queue": f"shtest{RUN}",
    }
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(
    ca: tuple[trustme.CA, str], redis_client: redis.Redis
) -> Iterator[Callable[..., Settings]]:
    """Call it to configure shahihooks for a test: settings(urls=(...), rate_limit=3)."""
    shahihooks.hooks.clear()

    def make(**changes: object) -> Settings:
        return shahihooks.configure(base_settings(ca[1], **changes))

    make()
    yield make
    shahihooks.hooks.clear()
    prefix = f"shtest{RUN}:"
    # all but the epoch marker: the session's worker looks at it every few seconds, and gone
    # it would record the state as lost ({p}:lost) in whichever test runs next
    epoch = Keys(f"shtest{RUN}").epoch.encode()
    names = [n for n in redis_client.scan_iter(match=prefix + "*", count=1000) if n != epoch]
    if names:
        redis_client.delete(*names)
    forget_cached()


@pytest.fixture(scope="session")
def worker(ca: tuple[trustme.CA, str]) -> Iterator[object]:
    """One real Celery worker for the session, threads pool, on this run's own queue."""
    from celery.contrib.testing.worker import start_worker

    from shahihooks.app import app
    from shahihooks.contrib.django.outbox import RelayStep

    # the Django app added its outbox relay to every worker; this in-process one has none
    # (pytest-django guards the database): the outbox tests run the project's own worker
    app.steps["worker"].discard(RelayStep)
    shahihooks.configure(base_settings(ca[1]))
    with start_worker(
        app,
        pool="threads",
        concurrency=16,
        perform_ping_check=False,
        queues=[f"shtest{RUN}"],
        shutdown_timeout=30,
        loglevel="WARNING",
        task_events=True,  # as `shahihooks worker -E`: Flower's tests watch these
    ) as running:
        yield running
    # each test's teardown keeps the epoch marker (deleting it would report a loss to the
    # next test); the worker gone, it goes too
    keys = Keys(f"shtest{RUN}")
    redis.Redis.from_url(REDIS_URL).delete(keys.epoch, keys.lost)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def world(receiver: Receiver, ca: tuple[trustme.CA, str]) -> Iterator[World]:
    """A private append-only Redis, and subprocess workers and apps configured for it."""
    from tests.faults import World

    w = World(receiver, ca[1])
    w.start_redis()
    try:
        yield w
    finally:
        w.close()
