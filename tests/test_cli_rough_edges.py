"""A newcomer's first hour with the command line (issue #21): a bad port, data that is not an
object, an unknown event and a relative URL each refused in one clear line; a failing
listener says it failed; a worker whose Redis is down backs off and says so honestly;
`shahihooks worker` runs one process per core; Django's doctor names its settings as they
were written, and Flower starts with a Django project's settings."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

import shahihooks
from shahihooks import doctor
from shahihooks.cli import main
from shahihooks.cli.processes import FLOWER_COLUMNS, _pool, default_processes
from shahihooks.endpoints import Endpoint, EndpointStore
from shahihooks.errors import ConfigurationError
from shahihooks.keys import Keys
from shahihooks.mover import OUTAGE_MAX_WAIT_S, backoff
from shahihooks.safety import check_url
from shahihooks.settings import Settings
from tests.conftest import REDIS_URL, SECRET, clean_env, connects, free_port, wait_until
from tests.faults import World, halt
from tests.test_cli_consistency import cli

ROOT = Path(__file__).resolve().parent.parent


def test_listen_refuses_a_port_out_of_range_in_one_line() -> None:
    result = cli("listen", "--port", "99999", timeout=30)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line == "Error: --port 99999 is not a port: use 1 to 65535 (0: any free)"


def test_listen_marks_a_delivery_it_answered_with_a_failure_as_failed(settings) -> None:
    """`--status 500`: each attempt is shown failed, with whether its signature verified."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shahihooks",
            "listen",
            "-p",
            str(port),
            "--secret",
            SECRET,
            "--status",
            "500",
            "--count",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        s = settings(allow_http=True)
        from shahihooks.transport import post

        url = f"http://127.0.0.1:{port}/hook"
        wait_until(lambda: connects(port), what="listener up")
        body = b'{"id":"evt_2-b","event":"ticket.created"}'
        good = shahihooks.sign_headers(
            body, delivery_id="evt_2-b", event="ticket.created", secrets=SECRET
        )
        bad = shahihooks.sign_headers(
            body, delivery_id="evt_2-b", event="ticket.created", secrets="another-secret-0123456"
        )
        assert post(url, body, good, s).status == 500
        assert post(url, body, bad, s).status == 401
        out, _ = proc.communicate(timeout=15)
    finally:
        proc.kill()
    first, second = out.splitlines()
    assert first.startswith("[1] ✗ 500 ticket.created"), first
    assert "signature ✓" in first
    assert second.startswith("[2] ✗ 401 ticket.created"), second
    assert "✓" not in second


def test_a_listener_answering_2xx_still_shows_a_check_mark() -> None:
    from shahihooks.listen import Listener

    heard: list[Any] = []
    listener = Listener([SECRET], 200, lambda h, n: heard.append(h.line(n)))
    body = b'{"id":"evt_3-c","event":"ticket.created"}'
    headers = shahihooks.sign_headers(
        body, delivery_id="evt_3-c", event="ticket.created", secrets=SECRET
    )
    assert listener.handle(body, headers) == 200
    assert heard[0].startswith("[1] ✓ ticket.created")


def test_emit_refuses_data_that_is_not_a_json_object(settings) -> None:
    settings(urls=("https://127.0.0.1:9/not-an-object",))
    for raw, kind in (("[1,2]", "an array"), ('"text"', "a string"), ("7", "a number")):
        result = CliRunner().invoke(main, ["emit", "ticket.created", "--data", raw])
        assert result.exit_code == 2, result.output
        assert "must be a JSON object" in result.output
        assert f"got {kind}: {raw}" in result.output
        assert "Traceback" not in result.output


def test_emit_without_data_says_nothing_of_the_example_before_an_error(settings) -> None:
    """The notice comes once the example was sent; an error is the only line."""
    s = settings(secret=None)
    url = "https://127.0.0.1:9/no-secret"
    # stored while a global secret was set: now nothing can sign for it
    client = redis.Redis.from_url(REDIS_URL)
    client.hset(Keys(s.prefix).endpoints, url, Endpoint(url).to_json())
    result = CliRunner().invoke(main, ["emit", "ticket.created"])
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: "), line
    assert "no secret" in line


def test_endpoints_add_refuses_an_unknown_event_and_stores_nothing(settings) -> None:
    s = settings()
    url = f"https://127.0.0.1:9/unknown-{uuid.uuid4().hex[:6]}"
    result = CliRunner().invoke(main, ["endpoints", "add", url, "--event", "nope.nope"])
    assert result.exit_code == 1
    assert "unknown event 'nope.nope'" in result.output
    assert url not in [e.url for e in EndpointStore(redis.Redis.from_url(REDIS_URL), s).all()]


def test_a_url_that_is_not_absolute_is_named_with_the_schemes_allowed() -> None:
    with pytest.raises(ConfigurationError, match=r"'not-a-url' is not an absolute https:// URL"):
        check_url("not-a-url", Settings())
    with pytest.raises(
        ConfigurationError, match=r"'not-a-url' is not an absolute http:// or https:// URL"
    ):
        check_url("not-a-url", Settings(allow_http=True))


@pytest.mark.parametrize(
    ("source", "written"),
    [
        ('settings.SHAHIHOOKS["{}"]', 'allowed by settings.SHAHIHOOKS["ALLOW_HTTP"]'),
        ('app.config["SHAHIHOOKS_{}"]', 'allowed by app.config["SHAHIHOOKS_ALLOW_HTTP"]'),
        ("SHAHIHOOKS_{}", "allowed by SHAHIHOOKS_ALLOW_HTTP"),
    ],
)
def test_doctor_names_allow_http_as_the_settings_were_written(source: str, written: str) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    values = {"URLS": url, "SECRET": SECRET, "ALLOW_HTTP": True, "ALLOW_NETWORKS": "127.0.0.0/8"}
    s = Settings.from_mapping(values, source)
    checks = doctor.check_endpoint(Endpoint(url), s, [])
    (plain,) = [c for c in checks if "plain http" in c.what]
    assert written in plain.what
    assert not plain.ok


def test_the_worker_runs_one_process_per_core_by_default() -> None:
    assert default_processes() == max(1, os.cpu_count() or 1)
    option = next(p for p in main.commands["worker"].params if p.name == "processes")
    assert option.default is default_processes
    assert "one per core" in CliRunner().invoke(main, ["worker", "--help"]).output
    assert _pool([]) is None
    assert _pool(["-c", "4", "--pool", "prefork"]) == "prefork"
    assert _pool(["--pool=solo"]) == "solo"
    assert _pool(["-Pthreads"]) == "threads"


def test_a_worker_started_without_processes_runs_one_per_core(redis_client: redis.Redis) -> None:
    from celery import Celery

    queue = f"percore{uuid.uuid4().hex[:8]}"
    env = clean_env(SHAHIHOOKS_REDIS_URL=REDIS_URL, SHAHIHOOKS_QUEUE=queue)
    env["SHAHIHOOKS_PREFIX"] = queue
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shahihooks",
            "worker",
            "-c",
            "2",
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    probe = Celery("probe", broker=REDIS_URL)
    mine = f".{proc.pid}@"  # the supervisor's pid tags its workers' names

    def workers() -> list[str]:
        replies = probe.control.ping(timeout=1.0) or []
        return sorted(n for r in replies for n in r if mine in n)

    try:
        expected = default_processes()
        names = wait_until(lambda: len(workers()) >= expected and workers(), 60, "workers")
        assert len(names) == expected  # type: ignore[arg-type]
    finally:
        halt(proc, signal.SIGTERM)
        for name in redis_client.scan_iter(match=f"{queue}*", count=1000):
            redis_client.delete(name)
    assert proc.returncode == 0


def test_the_outage_backoff_doubles_up_to_its_ceiling() -> None:
    waits = [backoff(n) for n in range(1, 8)]
    assert waits == [1, 2, 4, 8, OUTAGE_MAX_WAIT_S, OUTAGE_MAX_WAIT_S, OUTAGE_MAX_WAIT_S]


_MOVER_LINE = re.compile(r"^\[(.+?): WARNING/MainProcess\] mover: .*\(trying again in (\d+) s\)$")


def test_a_worker_whose_redis_is_down_backs_off_and_says_the_wait_it_keeps(world: World) -> None:
    from celery import Celery

    log = Path(world.folder) / "workers.log"
    proc = world.worker(2, 1)
    probe = Celery("probe", broker=world.url)
    wait_until(lambda: probe.control.ping(timeout=1.0), 60, "the worker up")
    start = len(log.read_text())
    world.stop_redis()
    wait_until(lambda: "trying again in 8 s" in log.read_text()[start:], 60, "the 4th try")
    world.start_redis()
    wait_until(lambda: "mover: reconnected after" in log.read_text()[start:], 60, "reconnected")
    halt(proc, signal.SIGTERM)
    during = log.read_text()[start:]
    assert "In Celery 5.1 we introduced" not in during, "the deprecation block on each loss"
    tries = [m.groups() for m in map(_MOVER_LINE.match, during.splitlines()) if m]
    stated = [int(wait) for _, wait in tries]
    assert stated[:4] == [1, 2, 4, 8], during[-3000:]
    times = [_seconds(at) for at, _ in tries]
    for (before, wait), after in zip(zip(times, stated, strict=False), times[1:], strict=False):
        assert after - before >= wait - 0.1, "it waits at least what it said"
    lines_per_s = len(tries) / max(times[-1] - times[0], 1)
    assert lines_per_s < 1, f"{len(tries)} mover lines in {times[-1] - times[0]:.1f} s"


def _seconds(stamp: str) -> float:
    clock = stamp.split()[1]  # 2026-12-02 06:05:44,963
    h, m, rest = clock.split(":")
    return int(h) * 3600 + int(m) * 60 + float(rest.replace(",", "."))


def test_flower_starts_with_a_django_projects_settings(tmp_path: Path) -> None:
    port = free_port()
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    env = clean_env(FLOWER_BASIC_AUTH="admin:choose-one", SHAHIHOOKS_REDIS_URL=nowhere)
    env["PYTHONPATH"] = str(ROOT)
    manage = ROOT / "tests" / "django_project" / "manage.py"
    log = tmp_path / "flower.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(manage),
                "shahihooks",
                "flower",
                f"--port={port}",
                "--address=127.0.0.1",
            ],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    try:
        wait_until(lambda: "Connected to" in log.read_text(), 60, "flower connected")
        text = log.read_text()
        broker = re.search(r"Broker: (\S+)", text)
        assert broker, text
        assert broker.group(1).endswith("127.0.0.1:6379/15"), "the project's REDIS_URL"
        assert nowhere.split("//")[1] not in text, "not the environment's"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_flower_command_shows_the_makefiles_columns() -> None:
    found = re.search(r"^FLOWER_COLUMNS := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert found
    assert found.group(1) == FLOWER_COLUMNS
