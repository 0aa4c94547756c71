"""The files a user runs: docker-compose.yml and the Dockerfile (checked as files, since no
Docker engine runs here), the Makefile targets the README names, and `make demo`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml


def test_compose_has_persistent_redis_scalable_worker_flower_and_receiver(repo_root: Path) -> None:
    compose = yaml.safe_load((repo_root / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "worker", "flower", "receiver"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    assert "yes" in services["redis"]["command"]
    assert "redis-data:/data" in services["redis"]["volumes"]
    worker = services["worker"]
    assert worker["command"][0] == "worker"
    assert "-E" in worker["command"], "Flower needs task events"
    assert "container_name" not in worker, "must scale"
    assert "ports" not in worker, "must scale"
    assert "flower" in services["flower"]["entrypoint"]
    assert services["flower"]["ports"] == ["5555:5555"]
    assert services["receiver"]["command"][0] == "listen"
    for name in ("worker", "flower", "receiver"):
        env = services[name]["environment"]
        assert env["SHAHIHOOKS_REDIS_URL"] == "redis://redis:6379/0"
        assert "SHAHIHOOKS_SECRET" in env


def test_dockerfile_installs_the_package_and_runs_the_cli(repo_root: Path) -> None:
    text = (repo_root / "Dockerfile").read_text()
    assert "pip install" in text
    assert 'ENTRYPOINT ["shahihooks"]' in text
    assert "USER shahihooks" in text, "not as root"


def test_readme_names_the_commands_and_every_variable(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    for command in ("make demo", "make test", "make flower", "docker compose up"):
        assert command in readme, command
    from shahihooks.settings import _READERS

    for name in _READERS:
        assert f"SHAHIHOOKS_{name}" in readme, name


def test_make_demo_finishes_and_leaves_no_process(repo_root: Path) -> None:
    # pytest-django sets DJANGO_SETTINGS_MODULE; Celery's Django fixup would then configure
    # the demo's worker from the test project's SHAHIHOOKS dict
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SHAHIHOOKS_") and k != "DJANGO_SETTINGS_MODULE"
    }
    # its own session: whatever the demo starts stays in it, and only those are counted
    demo = subprocess.Popen(
        [sys.executable, str(repo_root / "scripts" / "demo.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=repo_root,
        start_new_session=True,
    )
    stdout, stderr = demo.communicate(timeout=120)
    assert demo.returncode == 0, stdout[-3000:] + "\n---\n" + stderr[-3000:]
    assert stdout.count("✓ ") == 10
    assert "gave up after 4 attempts" in stdout
    assert _session_processes(demo.pid) == []


def _session_processes(sid: int) -> list[str]:
    out = subprocess.run(["ps", "-eo", "sid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split(None, 1)[0] == str(sid)]
