"""The command line: test, verify, emit, worker, run as a user runs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

import shahihooks
from shahihooks.cli import main
from tests.conftest import REDIS_URL, SECRET, clean_env
from tests.receiver import Receiver


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shahihooks", *args],
        capture_output=True,
        text=True,
        env=clean_env(**(env or {})),
        timeout=60,
    )


def test_test_command_posts_one_signed_delivery_and_prints_status(
    receiver: Receiver, ca: tuple[object, str]
) -> None:
    path = f"/cli-test-{uuid.uuid4().hex[:6]}"
    result = run_cli(
        "test",
        receiver.url(path),
        "--event",
        "ticket.status_changed",
        env={
            "SHAHIHOOKS_SECRET": SECRET,
            "SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
            "SHAHIHOOKS_CA_BUNDLE": ca[1],
        },
    )
    assert result.returncode == 0, result.stderr
    assert "✓ HTTP 200 in" in result.stdout
    assert '{"status":"success"}' in result.stdout
    (got,) = receiver.requests_to(path)
    payload = shahihooks.verify(got.body, got.headers, SECRET)
    assert payload["event"] == "ticket.status_changed"
    assert payload["data"] == {"test": True, "ticket_id": 999, "title": "Test Ticket"}


def test_test_command_reports_a_failure_with_exit_1(
    receiver: Receiver, ca: tuple[object, str]
) -> None:
    path = f"/cli-fail-{uuid.uuid4().hex[:6]}"
    receiver.rule(path, lambda n: 500)
    result = run_cli(
        "test",
        receiver.url(path),
        "--json",
        env={
            "SHAHIHOOKS_SECRET": SECRET,
            "SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
            "SHAHIHOOKS_CA_BUNDLE": ca[1],
        },
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["status"] == 500


def test_test_command_refuses_a_private_target_naming_it() -> None:
    result = run_cli("test", "https://127.0.0.1:9/x", env={"SHAHIHOOKS_SECRET": SECRET})
    assert result.returncode == 1
    assert "127.0.0.1, a private, loopback" in result.stderr


def test_test_command_with_an_invalid_certificate_fails_with_the_tls_cause(
    receiver: Receiver,
) -> None:
    result = run_cli(
        "test",
        receiver.url("/tls"),
        env={"SHAHIHOOKS_SECRET": SECRET, "SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8"},
    )
    assert result.returncode == 1
    assert "tls error" in result.stdout
    assert "CERTIFICATE_VERIFY_FAILED" in result.stdout


def test_verify_command_accepts_a_good_signature_and_rejects_a_bad_one(tmp_path: Path) -> None:
    body = b'{"event":"ticket.created","data":{}}'
    (tmp_path / "body.json").write_bytes(body)
    good = "sha256=" + hmac.new(b"cli-secret-0123456789", body, hashlib.sha256).hexdigest()
    runner = CliRunner()
    ok = runner.invoke(
        main,
        [
            "verify",
            "--secret",
            "cli-secret-0123456789",
            "--signature",
            good,
            str(tmp_path / "body.json"),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "✓ valid" in ok.output
    bad = runner.invoke(
        main,
        [
            "verify",
            "--secret",
            "wrong-secret-0123456789",
            "--signature",
            good,
            str(tmp_path / "body.json"),
        ],
    )
    assert bad.exit_code == 1
    assert "✗ invalid" in bad.output


def test_verify_command_checks_a_standard_webhooks_signature(tmp_path: Path) -> None:
    body = b'{"event":"ticket.created"}'
    headers = shahihooks.sign_headers(
        body,
        delivery_id="evt_1-a",
        event="ticket.created",
        secrets="cli-secret-0123456789",
        timestamp=1700000000,
    )
    (tmp_path / "b.json").write_bytes(body)
    args = [
        "verify",
        "--secret",
        "cli-secret-0123456789",
        "--signature",
        headers["webhook-signature"],
    ]
    result = CliRunner().invoke(
        main, [*args, "--id", "evt_1-a", "--timestamp", "1700000000", str(tmp_path / "b.json")]
    )
    assert result.exit_code == 0, result.output
    missing = CliRunner().invoke(main, [*args, str(tmp_path / "b.json")])
    assert missing.exit_code == 2
    assert "needs --id and --timestamp" in missing.output


def test_verify_tolerance_zero_is_strict_and_no_tolerance_skips_the_age_check(
    tmp_path: Path,
) -> None:
    body = b'{"event":"ticket.created"}'
    secret = "cli-secret-0123456789"
    headers = shahihooks.sign_headers(
        body, delivery_id="evt_1-a", event="e.x", secrets=secret, timestamp=1700000000
    )
    (tmp_path / "b.json").write_bytes(body)
    args = ["verify", "--secret", secret, "--signature", headers["webhook-signature"]]
    args += ["--id", "evt_1-a", "--timestamp", "1700000000", str(tmp_path / "b.json")]
    assert CliRunner().invoke(main, args).exit_code == 0
    strict = CliRunner().invoke(main, [*args, "--tolerance", "0"])
    assert strict.exit_code == 1
    assert "outside the ±0 s tolerance" in strict.output
    negative = CliRunner().invoke(main, [*args, "--tolerance", "-1"])
    assert negative.exit_code == 2


@pytest.mark.usefixtures("worker")
def test_emit_command_prints_one_delivery_per_endpoint(settings, receiver: Receiver) -> None:
    paths = [f"/cli-emit-{i}-{uuid.uuid4().hex[:6]}" for i in range(2)]
    settings(urls=tuple(receiver.url(p) for p in paths))
    result = CliRunner().invoke(
        main, ["emit", "ticket.created", "--data", '{"ticket_id": 5}', "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted(r["url"] for r in rows) == sorted(receiver.url(p) for p in paths)
    for path, row in zip(paths, rows, strict=True):
        (got,) = receiver.wait_for(path, 1)
        assert got.header("webhook-id") == row["id"]


def test_emit_command_names_bad_json_and_unknown_events(settings) -> None:
    settings(urls=("https://127.0.0.1:9/x",), queue="shtest-idle")
    bad = CliRunner().invoke(main, ["emit", "ticket.created", "--data", "{nope"])
    assert bad.exit_code == 2
    assert "not JSON" in bad.output
    unknown = CliRunner().invoke(main, ["emit", "ticket.nope", "--data", "{}"])
    assert unknown.exit_code == 1
    assert "unknown event 'ticket.nope'" in unknown.output


@pytest.mark.parametrize("command", ["test", "verify", "emit", "worker"])
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_bad_environment_is_a_clear_error_not_a_traceback() -> None:
    result = run_cli("test", "https://example.com/x", env={"SHAHIHOOKS_RATE_LIMIT": "-1"})
    assert result.returncode == 1
    assert "SHAHIHOOKS_RATE_LIMIT='-1' is not valid: must not be negative" in result.stderr
    assert "Traceback" not in result.stderr
    assert REDIS_URL


def test_emit_command_names_a_missing_data_file(settings) -> None:
    settings()
    result = CliRunner().invoke(main, ["emit", "ticket.created", "--data", "@/nonexistent.json"])
    assert result.exit_code == 2
    assert "cannot read '/nonexistent.json'" in result.output
