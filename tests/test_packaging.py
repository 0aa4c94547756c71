"""The files a user runs: docker-compose.yml (production by default, the demo in a profile;
validated here, and by a compose client when one is installed), .dockerignore and the
Dockerfile, the Makefile targets the README names, and `make demo`."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shahihooks.settings import Settings


def compose(repo_root: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((repo_root / "docker-compose.yml").read_text())
    return loaded


def default_services(repo_root: Path) -> dict[str, Any]:
    """The services `docker compose up` starts: those in no profile."""
    return {n: s for n, s in compose(repo_root)["services"].items() if not s.get("profiles")}


def test_compose_has_persistent_redis_scalable_worker_and_flower(repo_root: Path) -> None:
    services = compose(repo_root)["services"]
    assert {"redis", "worker", "flower"} == set(default_services(repo_root))
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command
    assert '--requirepass "$$REDIS_PASSWORD"' in redis_command, "a password, not in argv"
    assert "redis-data:/data" in services["redis"]["volumes"]
    worker = services["worker"]
    assert worker["command"][0] == "worker"
    assert "-E" in worker["command"], "Flower needs task events"
    assert "container_name" not in worker, "must scale"
    assert "ports" not in worker, "must scale"
    assert "flower" in services["flower"]["entrypoint"]
    for name in ("worker", "flower", "cli", "demo-worker", "worker-rabbitmq"):
        url = services[name]["environment"]["SHAHIHOOKS_REDIS_URL"]
        assert url.startswith("redis://:${REDIS_PASSWORD:?"), (name, url)
        assert url.endswith("@redis:6379/0"), (name, url)


def test_compose_default_services_are_for_production(repo_root: Path) -> None:
    services = compose(repo_root)["services"]
    for name, service in default_services(repo_root).items():
        assert service.get("restart") == "unless-stopped", name
        env = service.get("environment", {})
        assert "SHAHIHOOKS_ALLOW_HTTP" not in env, name
        assert "SHAHIHOOKS_ALLOW_NETWORKS" not in env, name
        assert "SHAHIHOOKS_SECRET" not in env, "from .env only: no placeholder secret"
        assert "healthcheck" in service, name
        image = service.get("image", "")
        assert re.fullmatch(r"[\w./-]+:\d[\w.-]*", image), f"{name}: pinned tag, got {image!r}"
    for name in ("worker", "worker-rabbitmq", "cli"):
        assert services[name]["env_file"] == ".env", "every SHAHIHOOKS_* setting passes"
    for name in ("worker", "worker-rabbitmq", "demo-worker"):
        grace = int(services[name]["stop_grace_period"].rstrip("s"))
        assert grace >= 15 + 15, f"{name}: an attempt (15 s) finishes on SIGTERM, with margin"
    flower = services["flower"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"], "this host only"
    assert "env_file" not in flower, "Flower never gets the signing secret"
    assert set(flower["environment"]) == {"SHAHIHOOKS_REDIS_URL", "FLOWER_BASIC_AUTH"}
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert "/healthcheck" in " ".join(flower["healthcheck"]["test"])
    assert "app.control.ping" in " ".join(services["worker"]["healthcheck"]["test"])
    assert services["redis"]["ports"] == ["${REDIS_BIND:-127.0.0.1}:${REDIS_HOST_PORT:-6379}:6379"]
    assert "FLOWER_UNAUTHENTICATED_API" not in flower["environment"]


def test_compose_demo_profile_holds_the_demo(repo_root: Path) -> None:
    services = compose(repo_root)["services"]
    demo = {n: s for n, s in services.items() if "demo" in s.get("profiles", [])}
    assert set(demo) == {"demo-receiver", "demo-worker", "demo"}
    for service in demo.values():
        env = service["environment"]
        assert env["SHAHIHOOKS_URLS"] == "http://demo-receiver:8000/webhook"
        assert env["SHAHIHOOKS_ALLOW_HTTP"] == "1"
        assert env["SHAHIHOOKS_QUEUE"] != services["worker"]["environment"].get(
            "SHAHIHOOKS_QUEUE", "shahihooks"
        ), "the demo has its own queue: the production worker never takes its deliveries"
    assert services["demo"]["command"] == ["emit", "ticket.created"]


_SERVICE_KEYS = {
    "build", "image", "command", "entrypoint", "environment", "env_file", "ports", "volumes",
    "depends_on", "restart", "profiles", "healthcheck", "networks", "deploy", "labels", "user",
    "working_dir", "expose", "logging", "stop_grace_period", "init",
}  # fmt: skip
_INTERPOLATION = re.compile(r"\$(\$|\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^}]*)?\}|[A-Za-z_]\w*)")


def test_compose_file_is_valid(repo_root: Path) -> None:
    """What `docker compose config` checks that a YAML parser does not: known keys, restart
    policies, dependencies and volumes that exist, scalar environment values, well-formed
    ${VAR} interpolation. (No Docker engine runs here; the next test runs a compose client
    when one is installed.)"""
    text = (repo_root / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        rest = _INTERPOLATION.sub("", line)
        assert "$" not in rest, f"bad interpolation: {line.strip()}"
    spec = compose(repo_root)
    assert set(spec) - {"services", "volumes", "networks", "configs", "secrets", "name"} == {
        k for k in spec if k.startswith("x-")
    }
    volumes = set(spec.get("volumes") or {})
    services = spec["services"]
    for name, service in services.items():
        assert set(service) <= _SERVICE_KEYS, (name, set(service) - _SERVICE_KEYS)
        assert "build" in service or "image" in service, name
        assert service.get("restart", "no") in {"no", "always", "on-failure", "unless-stopped"}
        for dep, how in (service.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            assert how["condition"] in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], dep
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith((".", "/")) or source in volumes, (name, volume)
        for key, value in (service.get("environment") or {}).items():
            assert isinstance(value, str | int | float | bool) or value is None, (name, key)
        assert all(isinstance(p, str) for p in service.get("profiles", [])), name


def _compose_client() -> list[str] | None:
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if shutil.which("docker") and plugin.returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def documented_env(repo_root: Path) -> str:
    """.env as the README says to write it: .env.example with its blanks filled in (secret,
    URLs, Redis password, Flower login) and two of its example settings uncommented."""
    filled = {
        "SHAHIHOOKS_SECRET": "0123456789abcdef0123456789abcdef",
        "SHAHIHOOKS_URLS": "https://hooks.example.com/in https://crm.example.com/hooks",
        "REDIS_PASSWORD": "5f0c2a9e7b1d4c3e8a6f",
        "FLOWER_BASIC_AUTH": "admin:choose-one",
    }
    lines = []
    for line in (repo_root / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        if name in filled and line == f"{name}=":
            line = f"{name}={filled.pop(name)}"
        elif line.startswith(("# SHAHIHOOKS_RATE_LIMIT=", "# SHAHIHOOKS_RETRY_SCHEDULE=")):
            line = line[2:]
        lines.append(line)
    assert not filled, f".env.example has no blank line for {sorted(filled)}"
    return "\n".join(lines) + "\n"


def compose_config(
    repo_root: Path, folder: Path, env_text: str | None, *profile: str
) -> subprocess.CompletedProcess[str]:
    """`docker compose config` on a copy of the compose file beside `env_text` as .env (the
    repository's own .env, if any, is never read or written)."""
    client = _compose_client()
    assert client is not None, "no compose client: `make test` installs Debian's docker-compose"
    shutil.copy(repo_root / "docker-compose.yml", folder / "docker-compose.yml")
    if env_text is not None:
        (folder / ".env").write_text(env_text)
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    args = [a for p in profile for a in ("--profile", p)]
    return subprocess.run(
        [*client, *args, "config"], cwd=folder, env=base, capture_output=True, text=True
    )


@pytest.mark.parametrize("profile", [(), ("demo",), ("rabbitmq",), ("cli",)], ids=str)
def test_docker_compose_config_passes_on_the_documented_env_and_every_setting_reaches_the_workers(
    repo_root: Path, tmp_path: Path, profile: tuple[str, ...]
) -> None:
    result = compose_config(repo_root, tmp_path, documented_env(repo_root), *profile)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    workers = ["worker", "cli"] + (["worker-rabbitmq"] if "rabbitmq" in profile else [])
    for name in workers:
        env = services[name]["environment"]
        assert env["SHAHIHOOKS_RATE_LIMIT"] == "1000", name
        assert env["SHAHIHOOKS_RETRY_SCHEDULE"] == "60,300,1800", name
        assert env["SHAHIHOOKS_REDIS_URL"] == "redis://:5f0c2a9e7b1d4c3e8a6f@redis:6379/0"
        settings = Settings.from_env(env)  # what the worker will read, valid
        assert settings.rate_limit == 1000
        assert len(settings.urls) == 2
        assert settings.broker_url == (
            "amqp://shahihooks:@rabbitmq:5672//"
            if name == "worker-rabbitmq"
            else settings.redis_url
        )
    flower = services["flower"]["environment"]
    assert not any("SECRET" in name for name in flower), "Flower never gets the secret"
    assert services["redis"]["environment"]["REDIS_PASSWORD"] == "5f0c2a9e7b1d4c3e8a6f"


def test_docker_compose_config_names_what_is_missing(repo_root: Path, tmp_path: Path) -> None:
    documented = documented_env(repo_root)
    for name in ("FLOWER_BASIC_AUTH", "REDIS_PASSWORD"):
        without = re.sub(rf"^{name}=.*$", f"{name}=", documented, flags=re.M)
        result = compose_config(repo_root, tmp_path, without)
        assert result.returncode != 0
        assert name in result.stderr
    empty = tmp_path / "no-env"
    empty.mkdir()
    missing = compose_config(repo_root, empty, None)
    assert missing.returncode != 0, "no .env: said, not run with empty settings"
    assert ".env" in missing.stderr


def test_dockerignore_keeps_the_venv_and_secrets_out_of_the_build(repo_root: Path) -> None:
    ignored = [
        line.strip()
        for line in (repo_root / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in (".venv/", ".git", ".env"):
        assert needed in ignored, needed
    copied = re.findall(r"^COPY (.+) \S+$", (repo_root / "Dockerfile").read_text(), re.M)
    for source in " ".join(copied).split():
        assert not any(fnmatch.fnmatch(source, p.rstrip("/")) for p in ignored), source


def test_dockerfile_installs_the_package_and_runs_the_cli(repo_root: Path) -> None:
    text = (repo_root / "Dockerfile").read_text()
    assert "pip install" in text
    assert 'ENTRYPOINT ["shahihooks"]' in text
    assert "USER shahihooks" in text, "not as root"
    (install,) = re.findall(r"^RUN pip install (.*)$", text, re.M)
    assert install.split("&&")[0].split() == ["--no-cache-dir", "."], "the package alone"
    import tomllib

    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("trustme")], "a test tool"
    assert re.search(r"^FROM python:3\.11\.\d+-slim", text, re.M), "a pinned base image"


def test_readme_names_the_commands_and_links_every_setting(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    for command in ("make demo", "make test", "make flower", "docker compose up"):
        assert command in readme, command
    assert "(docs/configuration.md)" in readme
    assert len(re.findall(r"^\| `SHAHIHOOKS_BACKLOG_MAX` \|", readme, re.M)) == 1
    reference = (repo_root / "docs" / "configuration.md").read_text()
    from shahihooks.settings import _READERS

    for name in _READERS:
        assert len(re.findall(rf"^\| `SHAHIHOOKS_{name}` \|", reference, re.M)) == 1, name
    assert len(readme.splitlines()) < 650, "a user's README: the rest goes to docs/"


def test_readme_documents_every_django_setting_and_the_flower_api(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    from shahihooks.settings import _READERS

    types = (repo_root / "docs" / "configuration.md").read_text().split("## Types in the")[1]
    for name in _READERS:
        assert f'| `"{name}"` |' in types, name
    django = readme[readme.index("### Django") : readme.index("### Flask")]
    assert "emit` returns `None`" in django
    assert "override_settings" in django
    assert "python manage.py shahihooks worker" in django
    assert "python manage.py shahihooks flower" in django
    assert "flask --app myproject shahihooks worker" in readme
    assert "FLOWER_UNAUTHENTICATED_API" in readme
    assert "curl -u user:password" in readme
    columns = re.search(r"^FLOWER_COLUMNS := (\S+)$", (repo_root / "Makefile").read_text(), re.M)
    assert columns
    assert f"--tasks_columns={columns.group(1)}" in readme.replace("\n", " ")


def test_readme_installs_from_a_clone_first_and_says_what_the_page_is(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    assert readme.index("pip install .") < readme.index("make demo")
    assert "once published: pip install shahihooks" in readme, "the index name, for later"
    assert readme.count("**the page**") == 1


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


def test_compose_rabbitmq_profile_runs_workers_on_rabbitmq_with_the_state_in_redis(
    repo_root: Path,
) -> None:
    services = compose(repo_root)["services"]
    assert services["rabbitmq"]["profiles"] == ["rabbitmq"]
    worker = services["worker-rabbitmq"]
    assert worker["profiles"] == ["rabbitmq"]
    env = worker["environment"]
    assert env["SHAHIHOOKS_BROKER_URL"].startswith("amqp://")
    assert "@rabbitmq:5672/" in env["SHAHIHOOKS_BROKER_URL"]
    assert env["SHAHIHOOKS_REDIS_URL"].endswith("@redis:6379/0")
    assert "rabbitmq" in worker["depends_on"]
    rabbitmq = services["rabbitmq"]
    assert rabbitmq["environment"]["RABBITMQ_DEFAULT_PASS"] == "${RABBITMQ_PASSWORD:-}", (
        "not required (compose interpolates every profile): the service refuses to start"
    )
    assert "RABBITMQ_PASSWORD" in " ".join(rabbitmq["entrypoint"])
