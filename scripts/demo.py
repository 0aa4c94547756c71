"""`make demo`: a real worker delivering real signed webhooks to local HTTPS receivers.

Starts two `shahihooks listen` receivers (one healthy, one answering 500) with a fresh test
CA, a `shahihooks worker`, emits each of the ten events, shows them arrive verified, shows
the failing endpoint retried on a shortened schedule and dead-lettered, prints the stats,
and stops everything it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import trustme

BIN = Path(sys.executable).parent
SECRET = "demo-secret-" + os.urandom(8).hex()
PREFIX = "shahihooks-demo"
EVENTS = {
    "ticket.created": {
        "ticket_id": 123,
        "title": "Login issue",
        "status": "open",
        "author_email": "user@example.com",
        "custom_fields": {"priority": "high", "product": "web_app"},
    },
    "ticket.status_changed": {
        "ticket_id": 123,
        "old_status": "open",
        "new_status": "pending",
        "changed_by": 10,
        "change_reason": "Waiting for user response",
    },
    "ticket.reply_added": {"ticket_id": 123, "reply_id": 77, "content": "Try resetting it"},
    "ticket.assigned": {"ticket_id": 123, "agent_id": 10, "agent_email": "agent@example.com"},
    "ticket.closed": {"ticket_id": 123, "closed_by": 10, "resolution": "solved"},
    "article.published": {
        "article_id": 456,
        "title": "How to reset password",
        "categories": ["getting-started"],
        "tags": ["password", "login"],
    },
    "article.updated": {"article_id": 456, "changed_fields": ["content"]},
    "article.viewed": {"article_id": 456, "viewer_id": 5},
    "user.role_changed": {"user_id": 5, "old_role": "subscriber", "new_role": "agent"},
    "agent.login": {"agent_id": 10, "ip_address": "203.0.113.7"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(text: str) -> None:
    print(f"\n── {text}", flush=True)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="shahihooks-demo-"))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(work / "tls.pem"))
    good, bad = free_port(), free_port()
    good_url, bad_url = f"https://127.0.0.1:{good}/webhook", f"https://127.0.0.1:{bad}/webhook"
    env = {
        **os.environ,
        "SHAHIHOOKS_URLS": good_url,
        "SHAHIHOOKS_SECRET": SECRET,
        "SHAHIHOOKS_SITE_URL": "https://help.example.com",
        "SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
        "SHAHIHOOKS_CA_BUNDLE": str(work / "ca.pem"),
        "SHAHIHOOKS_RETRY_SCHEDULE": "2,4,8",
        "SHAHIHOOKS_RATE_LIMIT": "100",
        "SHAHIHOOKS_RETRY_AFTER_MAX": "60",
        "SHAHIHOOKS_RATE_WINDOW": "60",
        "SHAHIHOOKS_PREFIX": PREFIX,
        "SHAHIHOOKS_QUEUE": PREFIX,
    }
    os.environ.update(env)
    from shahihooks.connections import redis_client
    from shahihooks.settings import current

    settings = current()
    client = redis_client(settings.redis_url)
    _clean(client)
    cli = [str(BIN / "shahihooks")]
    tls = ["--tls-cert", str(work / "tls.pem")]
    procs: list[subprocess.Popen[bytes]] = []
    good_out = open(work / "good.jsonl", "wb")  # noqa: SIM115 - closed in finally
    worker_log = open(work / "worker.log", "wb")  # noqa: SIM115 - closed in finally
    try:
        procs.append(
            subprocess.Popen(
                [*cli, "listen", "--port", str(good), "--secret", SECRET, "--json", *tls],
                env=env,
                stdout=good_out,
            )
        )
        procs.append(
            subprocess.Popen(
                [*cli, "listen", "--port", str(bad), "--secret", SECRET, "--status", "500", *tls],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        procs.append(
            subprocess.Popen(
                [*cli, "worker", "--loglevel", "WARNING", "-c", "8"],
                env=env,
                stdout=worker_log,
                stderr=worker_log,
            )
        )
        _wait_for_worker(cli, env)
        say(f"a worker and two HTTPS receivers: {good_url} (healthy), {bad_url} (answers 500)")
        subprocess.run(
            [
                *cli,
                "endpoints",
                "add",
                bad_url,
                "--event",
                "ticket.created",
                "--description",
                "always fails, for the demo",
            ],
            env=env,
            check=True,
        )
        say("emitting each of the ten events")
        import shahihooks

        for event, data in EVENTS.items():
            deliveries = shahihooks.emit(event, data)
            print(f"  {event:<22} → {', '.join(d.id for d in deliveries)}")
        say("arriving at the healthy receiver, each verified (HMAC-SHA256, both schemes)")
        heard = _wait_lines(work / "good.jsonl", len(EVENTS), 30)
        for row in heard:
            mark = "✓" if row["valid"] else "✗"
            print(f"  {mark} {row['event']:<22} {row['id']}  attempt {row['attempt']}")
        if len(heard) != len(EVENTS) or not all(r["valid"] for r in heard):
            print("demo failed: not every event arrived verified", file=sys.stderr)
            return 1
        say("the failing endpoint: retried after 2, 4 and 8 s (shortened), then dead-lettered")
        deadline = time.monotonic() + 40
        while not client.zcard(f"{PREFIX}:dead") and time.monotonic() < deadline:
            time.sleep(0.5)
        subprocess.run([*cli, "log", "--url", bad_url], env=env, check=True)
        subprocess.run([*cli, "dead", "list"], env=env, check=True)
        if not client.zcard(f"{PREFIX}:dead"):
            print("demo failed: the failing delivery was not dead-lettered", file=sys.stderr)
            return 1
        say("stats for the last hour (shahihooks stats --since 1h)")
        subprocess.run([*cli, "stats", "--since", "1h"], env=env, check=True)
        say("done: stopping the worker and the receivers")
        return 0
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        good_out.close()
        worker_log.close()
        _clean(client)
        client.delete(PREFIX)


def _wait_for_worker(cli: list[str], env: dict[str, str]) -> None:
    from shahihooks.app import app

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5):
            return
    raise SystemExit("the demo worker did not start (see its log above)")


def _wait_lines(path: Path, count: int, timeout: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if len(rows) >= count:
            break
        time.sleep(0.2)
    return rows


def _clean(client: redis.Redis) -> None:
    names = list(client.scan_iter(match=f"{PREFIX}:*", count=1000))
    if names:
        client.delete(*names)


if __name__ == "__main__":
    sys.exit(main())
