"""Operating it: log, stats, dead letters and replay, endpoints, doctor, listen — run as
commands against a real Redis and a real worker, asserting on their --json output."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from click.testing import CliRunner

import shahihooks
from shahihooks.cli import main
from shahihooks.stats import p95_from_histogram, parse_duration
from tests.conftest import SECRET, clean_env, connects, free_port, wait_until
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("worker")


def cli_json(*args: str) -> object:
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def path(name: str) -> str:
    return f"/{name}-{uuid.uuid4().hex[:8]}"


def test_log_shows_attempts_with_status_duration_and_error(settings, receiver: Receiver) -> None:
    ok_path, bad_path = path("log-ok"), path("log-bad")
    settings(urls=(receiver.url(ok_path), receiver.url(bad_path)), retry_schedule_s=(0.2,))
    receiver.rule(bad_path, lambda n: 502)
    shahihooks.emit("ticket.created", {"ticket_id": 1})
    wait_until(lambda: len(receiver.requests_to(bad_path)) == 2)
    failed = wait_until(
        lambda: [r for r in _log("--failed") if r["url"].endswith(bad_path)][1:], what="2 failures"
    )
    assert isinstance(failed, list)
    assert [r["outcome"] for r in _log("--failed", "--url", receiver.url(bad_path))] == [
        "retry",
        "dead",
    ]
    delivered = [r for r in _log("--url", receiver.url(ok_path))]
    assert delivered[0]["status"] == 200, "numbers as numbers"
    assert delivered[0]["error"] == ""
    assert isinstance(delivered[0]["ms"], int)
    assert delivered[0]["ms"] >= 0
    assert delivered[0]["attempt"] == 1
    assert isinstance(delivered[0]["ts"], float)
    assert delivered[0]["next_s"] is None
    retry, dead = _log("--failed", "--url", receiver.url(bad_path))
    assert (retry["next_s"], dead["next_s"]) == (0.2, None)
    assert (retry["status"], dead["attempt"]) == (502, 2)
    assert "HTTP 502" in failed[0]["error"]


def _log(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["log", *args, "--json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _attempts(url: str) -> list[dict[str, Any]]:
    """The attempts logged for `url` (not the deferrals: its limit starts at 2 in flight)."""
    return [r for r in _log("--url", url) if r["outcome"] != "deferred"]


def test_log_follow_prints_new_attempts(settings, receiver: Receiver) -> None:
    from shahihooks.stats import follow_log

    p = path("follow")
    s = settings(urls=(receiver.url(p),))
    rows: list[dict[str, str]] = []
    import threading

    def tail() -> None:
        for row in follow_log(s, url=receiver.url(p), block_ms=200, stop_after_s=60):
            rows.append(row)
            return

    thread = threading.Thread(target=tail)
    thread.start()
    # the tail starts after the newest entry when its thread first reads, which a loaded
    # machine may delay past an attempt: emit until one it follows is printed
    ids: list[str] = []
    deadline = time.monotonic() + 60
    while not rows and time.monotonic() < deadline:
        (delivery,) = shahihooks.emit("ticket.closed", {"ticket_id": len(ids)})
        ids.append(delivery.id)
        wait_for = time.monotonic() + 2
        while not rows and time.monotonic() < wait_for:
            time.sleep(0.05)
    thread.join(timeout=15)
    assert rows, f"none of {len(ids)} attempts was printed"
    assert rows[0]["id"] in ids


def test_stats_count_success_rate_average_and_p95(settings, receiver: Receiver) -> None:
    ok_path, bad_path = path("stats-ok"), path("stats-bad")
    settings(urls=(receiver.url(ok_path), receiver.url(bad_path)), retry_schedule_s=())
    receiver.rule(bad_path, lambda n: 500)
    for i in range(4):
        shahihooks.emit("ticket.created", {"ticket_id": i})
    wait_until(lambda: len(_attempts(receiver.url(bad_path))) == 4, what="4 logged")
    wait_until(lambda: len(_attempts(receiver.url(ok_path))) == 4, what="4 logged")
    rows = cli_json("stats", "--since", "1h", "--event", "ticket.created")
    assert isinstance(rows, list)
    by_url = {r["url"]: r for r in rows}
    assert by_url[receiver.url(ok_path)]["count"] == 4
    assert by_url[receiver.url(ok_path)]["success_rate"] == 1.0
    assert by_url[receiver.url(bad_path)]["success_rate"] == 0.0
    assert by_url[receiver.url(ok_path)]["p95_ms"] >= by_url[receiver.url(ok_path)]["avg_ms"]
    only = cli_json("stats", "--url", receiver.url(ok_path))
    assert [r["url"] for r in only] == [receiver.url(ok_path)]  # type: ignore[union-attr]


def test_p95_is_the_upper_edge_of_its_bucket() -> None:
    assert p95_from_histogram({"le10": 94, "le250": 6}) == 250
    assert p95_from_histogram({"le10": 95, "le250": 5}) == 10
    assert p95_from_histogram({"inf": 1}) == float("inf")
    assert p95_from_histogram({}) is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("15", 15)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_duration_is_named() -> None:
    result = CliRunner().invoke(main, ["stats", "--since", "yesterday"])
    assert result.exit_code == 2
    assert "'yesterday' is not a duration" in result.output


def test_dead_list_show_and_replay_end_to_end(settings, receiver: Receiver) -> None:
    p = path("dead")
    settings(urls=(receiver.url(p),), retry_schedule_s=(0.2,))
    receiver.rule(p, lambda n: 500)
    (delivery,) = shahihooks.emit("ticket.assigned", {"ticket_id": 3, "agent_id": 4})
    wait_until(
        lambda: any(r["id"] == delivery.id for r in cli_json("dead", "list")),  # type: ignore[union-attr]
        what="dead letter listed",
    )
    shown = cli_json("dead", "show", delivery.id)
    assert isinstance(shown, dict)
    assert json.loads(shown["body"])["data"] == {"ticket_id": 3, "agent_id": 4}
    assert shown["attempts"] == 2

    # replayed while still failing: dead-lettered again, not lost
    assert cli_json("dead", "replay", delivery.id) == {"replayed": [delivery.id]}
    wait_until(lambda: len(receiver.requests_to(p)) == 4, what="two more attempts")
    wait_until(
        lambda: any(r["id"] == delivery.id for r in cli_json("dead", "list")),  # type: ignore[union-attr]
        what="dead again",
    )

    receiver.rule(p, lambda n: 200)
    assert cli_json("dead", "replay", "--url", receiver.url(p)) == {"replayed": [delivery.id]}
    last = wait_until(lambda: receiver.requests_to(p)[4:], what="replayed delivery")
    assert isinstance(last, list)
    assert last[0].header("webhook-id") == delivery.id
    assert last[0].header("x-shahi-assist-attempt") == "1"
    assert shahihooks.verify(last[0].body, last[0].headers, SECRET)
    wait_until(
        lambda: not any(r["id"] == delivery.id for r in cli_json("dead", "list")),  # type: ignore[union-attr]
        what="dead letter gone",
    )


def test_dead_replay_names_an_unknown_id_and_needs_a_choice(settings) -> None:
    settings()
    missing = CliRunner().invoke(main, ["dead", "replay", "evt_nope-0"])
    assert missing.exit_code == 1
    assert "no dead letter 'evt_nope-0'" in missing.output
    bare = CliRunner().invoke(main, ["dead", "replay"])
    assert bare.exit_code == 2


def test_endpoints_commands_manage_the_store_and_never_show_secrets(settings) -> None:
    settings()
    url = "https://127.0.0.1:9/ep"
    runner = CliRunner()
    added = runner.invoke(
        main,
        [
            "endpoints",
            "add",
            url,
            "--event",
            "ticket.created",
            "--secret",
            "hidden-secret-value",
            "--rate-limit",
            "5",
        ],
    )
    assert added.exit_code == 0, added.output
    (row,) = [r for r in cli_json("endpoints", "list") if r["url"] == url]  # type: ignore[union-attr]
    assert row["events"] == ["ticket.created"]
    assert row["rate_limit"] == 5
    assert "hidden-secret-value" not in json.dumps(cli_json("endpoints", "list"))
    assert runner.invoke(main, ["endpoints", "disable", url]).exit_code == 0
    (row,) = [r for r in cli_json("endpoints", "list") if r["url"] == url]  # type: ignore[union-attr]
    assert row["enabled"] is False
    assert runner.invoke(main, ["endpoints", "enable", url]).exit_code == 0
    assert runner.invoke(main, ["endpoints", "remove", url]).exit_code == 0
    gone = runner.invoke(main, ["endpoints", "remove", url])
    assert gone.exit_code == 1
    assert "no endpoint" in gone.output
    bad = runner.invoke(main, ["endpoints", "add", "http://127.0.0.1:9/x"])
    assert bad.exit_code == 1
    assert "https:// URLs, got 'http://127.0.0.1:9/x'" in bad.output


def test_doctor_checks_the_live_configuration(settings, receiver: Receiver) -> None:
    p = path("doctor")
    settings(
        urls=(receiver.url(p), "https://localhost:9/nobody-home"),
        allow_networks=shahihooks.Settings.from_env(
            {"SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8 ::1/128"}
        ).allow_networks,
    )

    def doctor_with_a_worker_alive() -> list[dict[str, Any]] | None:
        result = CliRunner().invoke(main, ["doctor", "--json"])
        assert result.exit_code == 1
        checks: list[dict[str, Any]] = json.loads(result.stdout)
        alive = any("worker(s) alive" in c["what"] and c["ok"] for c in checks)
        return checks if alive else None

    # doctor pings the workers for 1 s: the session's worker, busy on a loaded machine, may
    # answer later; a doctor that never finds it alive fails here
    checks: Any = wait_until(doctor_with_a_worker_alive, timeout=20, what="a worker alive")
    text = {c["what"]: c["ok"] for c in checks}
    assert text["webhooks enabled"] is True
    assert text["secret set"] is True
    assert any(w.startswith("Redis reachable") and ok for w, ok in text.items())
    assert any("worker(s) alive" in w and ok for w, ok in text.items())
    assert any(p in w and "TLS certificate valid until" in w and ok for w, ok in text.items())
    assert any("nobody-home" in w and "TCP connect" in w and not ok for w, ok in text.items())
    assert all(c["fix"] for c in checks if not c["ok"])


def test_listen_verifies_prints_and_fails_on_purpose(settings, ca: tuple[object, str]) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shahihooks",
            "listen",
            "--port",
            str(port),
            "--secret",
            SECRET,
            "--status",
            "500",
            "--json",
            "--count",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(SHAHIHOOKS_ALLOW_HTTP="1"),
    )
    try:
        s = settings(allow_http=True)
        url = f"http://127.0.0.1:{port}/hook"
        from shahihooks.transport import post

        body = b'{"id":"evt_1-a","event":"ticket.created"}'
        wait_until(lambda: connects(port), what="listener up")
        good = shahihooks.sign_headers(
            body, delivery_id="evt_1-a", event="ticket.created", secrets=SECRET
        )
        assert post(url, body, good, s).status == 500
        bad = shahihooks.sign_headers(
            body, delivery_id="evt_1-a", event="ticket.created", secrets="wrong-secret-0123456789"
        )
        assert post(url, body, bad, s).status == 401
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["valid"] is True
    assert first["event"] == "ticket.created"
    assert second["valid"] is False
    assert "2 received, 1 verified" in err


@pytest.mark.parametrize(
    "command",
    [
        ["log"],
        ["stats"],
        ["dead", "list"],
        ["dead", "show"],
        ["dead", "replay"],
        ["endpoints", "add"],
        ["listen"],
        ["doctor"],
    ],
)
def test_operator_commands_have_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_listen_names_a_bad_certificate_file(tmp_path) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate")
    result = CliRunner().invoke(
        main, ["listen", "--port", "0", "--tls-cert", str(tmp_path / "bad.pem")]
    )
    assert result.exit_code == 1
    assert "cannot listen on 127.0.0.1:0" in result.output
