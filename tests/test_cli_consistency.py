"""The command line, consistent: one line and a non-zero exit when Redis is unreachable, a
listener without a secret verifies nothing, doctor names plain http, tables have a header
row, colour only on a terminal, `emit` without --data sends the page's example, and a
worker refuses to start when it could not sign what it would send."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
import redis
from click.testing import CliRunner

import shahihooks
from shahihooks.cli import main
from shahihooks.cli.supervise import respawn
from shahihooks.endpoints import Endpoint, EndpointStore
from shahihooks.events import registry
from shahihooks.listen import Heard
from tests.conftest import REDIS_URL, RUN, SECRET, clean_env, connects, free_port, wait_until
from tests.receiver import Receiver


def cli(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shahihooks", *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=timeout,
    )


NOWHERE = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
QUIET_WORKER = ["--loglevel", "INFO", "--without-mingle", "--without-gossip"]


@pytest.mark.parametrize(
    "args",
    [
        ["log"],
        ["log", "--follow"],
        ["log", "--json"],
        ["stats"],
        ["dead", "list"],
        ["dead", "show", "evt_x-1"],
        ["dead", "replay", "--all"],
        ["endpoints", "list"],
        ["endpoints", "add", "https://127.0.0.1:9/x"],
        ["endpoints", "remove", "https://127.0.0.1:9/x"],
        ["endpoints", "disable", "https://127.0.0.1:9/x"],
        ["emit", "ticket.created", "--data", "{}"],
        ["emit", "ticket.created"],  # the example's notice comes only once it is sent
    ],
    ids=lambda a: " ".join(a),
)
def test_every_command_answers_one_line_when_redis_is_unreachable(args: list[str]) -> None:
    result = cli(
        *args,
        SHAHIHOOKS_REDIS_URL=NOWHERE,
        SHAHIHOOKS_SECRET=SECRET,
        SHAHIHOOKS_URLS="https://127.0.0.1:9/x",
        SHAHIHOOKS_ALLOW_NETWORKS="127.0.0.0/8",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: Redis at {NOWHERE} is unreachable"), line
    assert "Connection refused" in line


def test_doctor_reports_an_unreachable_redis_in_its_checklist() -> None:
    result = cli("doctor", "--no-worker-check", SHAHIHOOKS_REDIS_URL=NOWHERE)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert f"✗ Redis at {NOWHERE} does not answer" in result.stdout


def test_listen_without_a_secret_starts_with_urls_set_and_marks_nothing_valid(settings) -> None:
    port = free_port()
    env = clean_env(SHAHIHOOKS_URLS="https://127.0.0.1:9/x")  # and no secret: still starts
    proc = subprocess.Popen(
        [sys.executable, "-m", "shahihooks", "listen", "-p", str(port), "--json", "--count", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        s = settings(allow_http=True)
        wait_until(lambda: connects(port), what="listener up")
        body = b'{"id":"evt_1-a","event":"ticket.created"}'
        headers = shahihooks.sign_headers(
            body, delivery_id="evt_1-a", event="ticket.created", secrets=SECRET
        )
        from shahihooks.transport import post

        assert post(f"http://127.0.0.1:{port}/hook", body, headers, s).status == 200
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    (heard,) = (json.loads(line) for line in out.splitlines())
    assert heard["valid"] is None
    assert "not verified" in heard["reason"]
    assert "NOT verifying" in err
    assert "1 received, none verified (no secret)" in err
    assert "✓" not in Heard(None, "ticket.created", "evt_1-a", "1", body).line(1)


def test_doctor_says_plain_http_for_an_http_url(settings) -> None:
    settings(urls=("http://127.0.0.1:9/plain",), allow_http=True)
    result = CliRunner().invoke(main, ["doctor", "--no-worker-check", "--json"])
    checks = json.loads(result.stdout)
    url = "http://127.0.0.1:9/plain"
    about = [c for c in checks if c["what"].startswith(url)]
    assert not any(c["what"].startswith(f"{url}: https") for c in about), about
    (plain,) = [c for c in about if "plain http, not https" in c["what"]]
    assert plain["ok"] is False
    assert "https://" in plain["fix"]
    assert result.exit_code == 1


@pytest.mark.usefixtures("worker")
def test_tables_have_a_header_row(settings, receiver: Receiver) -> None:
    path = f"/tables-{uuid.uuid4().hex[:8]}"
    settings(urls=(receiver.url(path),), retry_schedule_s=())
    receiver.rule(path, lambda n: 500)
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 1})
    wait_until(lambda: delivery.id in _stdout("dead", "list"), what="the dead letter")
    headers = {
        ("log",): ["TIME", "STATUS", "MS", "#", "EVENT", "ID", "URL", "ERROR"],
        ("stats",): ["URL", "EVENT", "COUNT", "OK", "%", "AVG", "ms", "P95", "ms"],
        ("dead", "list"): ["DIED", "EXPIRES", "ID", "EVENT", "ATTEMPTS", "URL", "REASON"],
        ("endpoints", "list"): ["HEALTH", "URL", "EVENTS", "SECRET", "BODY", "SOURCE"],
        ("emit", "ticket.closed"): ["ID", "STATUS", "URL"],
    }
    for args, words in headers.items():
        lines = _stdout(*args).splitlines()
        assert lines[0].split() == words, (args, lines[:2])
        assert len(lines) >= 2, args


def _stdout(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize(
    ("terminal", "no_color", "coloured"),
    [(True, "", True), (True, "1", False), (False, "", False)],
    ids=["terminal", "NO_COLOR", "piped"],
)
def test_colour_on_a_terminal_only_and_never_with_no_color(
    tmp_path: Any, terminal: bool, no_color: str, coloured: bool
) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b"{}")
    argv = [sys.executable, "-m", "shahihooks", "verify", "--secret", SECRET, "--signature"]
    argv += ["sha256=" + "0" * 64, str(body)]
    env = clean_env()
    env.pop("NO_COLOR", None)
    if no_color:
        env["NO_COLOR"] = no_color
    if terminal:
        out = _run_in_terminal(argv, env)
    else:
        out = subprocess.run(argv, capture_output=True, text=True, env=env).stdout
    assert "✗ invalid" in re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert ("\x1b[" in out) is coloured


def _run_in_terminal(argv: list[str], env: dict[str, str]) -> str:
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen(argv, stdout=child_fd, stderr=child_fd, env=env)
    os.close(child_fd)
    chunks = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main_fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(main_fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(main_fd)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.usefixtures("worker")
def test_emit_without_data_sends_the_pages_example(settings, receiver: Receiver) -> None:
    path = f"/example-{uuid.uuid4().hex[:8]}"
    settings(urls=(receiver.url(path),))
    result = CliRunner().invoke(main, ["emit", "ticket.created", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert "sent the example data of ticket.created" in result.stderr
    (got,) = receiver.wait_for(path, 1)
    assert got.header("webhook-id") == row["id"]
    sent = shahihooks.verify(got.body, got.headers, SECRET)["data"]
    assert sent == registry.get("ticket.created").example
    assert sent["title"] == "Login issue"  # the page's own example


def test_emit_without_data_for_an_event_without_an_example_asks_for_data(settings) -> None:
    settings()
    name = f"custom{RUN}.happened"
    shahihooks.register_event(name, "a test event")
    result = CliRunner().invoke(main, ["emit", name])
    assert result.exit_code == 2
    assert "has no example data: pass --data" in result.output


def test_the_worker_respawns_its_own_command_line_without_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flask = ["python", "/venv/bin/flask", "--app", "proj", "shahihooks", "worker"]
    monkeypatch.setattr(sys, "orig_argv", [*flask, "--processes", "2", "-c", "4"])
    assert respawn([]) == [sys.executable, *flask[1:], "-c", "4"]
    manage = ["python", "manage.py", "shahihooks", "worker", "--processes=3"]
    monkeypatch.setattr(sys, "orig_argv", manage)
    assert respawn([]) == [sys.executable, "manage.py", "shahihooks", "worker"]
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "pytest"])
    assert respawn(["-c", "2"]) == [sys.executable, "-m", "shahihooks", "worker", "-c", "2"]


class TestWorkerRefusesToStart:
    """A worker with no secret refuses to start while anything it would send needs one."""

    @pytest.fixture
    def prefix(self, redis_client: redis.Redis) -> Any:
        name = f"refuse{uuid.uuid4().hex[:8]}"
        yield name
        keys = list(redis_client.scan_iter(match=f"{name}*", count=1000))
        if keys:
            redis_client.delete(*keys)

    def env(self, prefix: str, **more: str) -> dict[str, str]:
        return {
            "SHAHIHOOKS_REDIS_URL": REDIS_URL,
            "SHAHIHOOKS_PREFIX": prefix,
            "SHAHIHOOKS_QUEUE": prefix,
            "SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
            **more,
        }

    def test_with_urls_and_no_secret(self, prefix: str) -> None:
        result = cli("worker", **self.env(prefix, SHAHIHOOKS_URLS="https://127.0.0.1:9/x"))
        assert result.returncode == 1
        (line,) = result.stderr.splitlines()
        assert "SHAHIHOOKS_URLS is set but SHAHIHOOKS_SECRET is not" in line

    def test_with_a_stored_endpoint_it_cannot_sign(self, prefix: str, tmp_path: Any) -> None:
        producer = shahihooks.Settings.from_env({**self.env(prefix), "SHAHIHOOKS_SECRET": SECRET})
        store = EndpointStore(redis.Redis.from_url(REDIS_URL), producer)
        store.add(Endpoint("https://127.0.0.1:9/stored"))
        result = cli("worker", **self.env(prefix))
        assert result.returncode == 1
        (line,) = result.stderr.splitlines()
        assert "no secret" in line
        assert "https://127.0.0.1:9/stored" in line
        store.add(Endpoint("https://127.0.0.1:9/stored", secrets=(SECRET,)))
        self.assert_starts(prefix, tmp_path)

    def test_with_deliveries_waiting_for_a_url_it_cannot_sign(self, prefix: str) -> None:
        producer = shahihooks.Settings.from_env(
            {
                **self.env(prefix),
                "SHAHIHOOKS_SECRET": SECRET,
                "SHAHIHOOKS_URLS": "https://127.0.0.1:9/app",
            }
        )
        shahihooks.emit("ticket.created", {"ticket_id": 1}, settings=producer)
        result = cli("worker", **self.env(prefix))
        assert result.returncode == 1
        assert "https://127.0.0.1:9/app has deliveries" in result.stderr
        assert "DJANGO_SETTINGS_MODULE" in result.stderr
        celery = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "shahihooks.app", "worker", "-P", "solo"],
            capture_output=True,
            text=True,
            env=clean_env(**self.env(prefix)),
            timeout=60,
        )
        assert celery.returncode == 1, "celery -A shahihooks.app worker refuses too"
        assert "refusing to start: no secret" in celery.stderr

    def assert_starts(self, prefix: str, tmp_path: Any) -> None:
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shahihooks", "worker", *QUIET_WORKER],
                stdout=out,
                stderr=out,
                env=clean_env(**self.env(prefix)),
            )
        try:
            wait_until(lambda: "ready." in log.read_text() or proc.poll() is not None, 30, "ready")
            assert proc.poll() is None, log.read_text()[-2000:]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
