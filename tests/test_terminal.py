"""What a receiver or a request wrote never reaches the operator's terminal as escape
sequences: `log`, `dead show`, `dead list`, `test` and `listen` print it escaped
(terminal.printable), and `--json` keeps it exact."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from click.testing import CliRunner

import shahihooks
from shahihooks import dead
from shahihooks.cli import main
from shahihooks.listen import Heard
from shahihooks.terminal import printable
from tests.conftest import SECRET, clean_env, wait_until
from tests.receiver import Receiver

OSC52 = "\x1b]52;c;cm0gLXJmIH4K\x07"  # sets the clipboard to "rm -rf ~"
TITLE = "\x1b]0;owned\x1b\\"
CSI = "\x1b[2J\x9b31m"  # clears the screen; then a C1 CSI
BIDI = "\u202etxt.exe"
HOSTILE = f"hello{OSC52}{TITLE}{CSI}{BIDI}\rX\x7f"
CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e", "\r", "\x7f")


def assert_printable(out: str) -> None:
    for c in CONTROLS:
        assert c not in out, (c, out)


def test_printable_escapes_c0_del_c1_and_bidi_controls_and_keeps_text() -> None:
    shown = printable(HOSTILE)
    assert_printable(shown)
    assert shown.startswith("hello\\x1b]52;c;cm0gLXJmIH4K\\x07")
    for escaped in ("\\x9b31m", "\\u202etxt.exe", "\\x0dX\\x7f"):
        assert escaped in shown
    assert printable("a\n\tb ✓ é") == "a\n\tb ✓ é"
    assert printable("a\n\tb", lines=False) == "a\\x0a\\x09b"
    assert printable(shown) == shown


def test_a_listener_line_is_printable() -> None:
    heard = Heard(False, f"e{OSC52}", "evt_1", "1", HOSTILE.encode(), reason=TITLE)
    line = heard.line(1)
    assert_printable(line)
    assert "\n" not in line


@pytest.mark.usefixtures("worker")
def test_a_receivers_answer_is_escaped_in_log_and_dead_letters_and_exact_in_json(
    settings, receiver: Receiver
) -> None:
    path = f"/osc-{uuid.uuid4().hex[:8]}"
    settings(urls=(receiver.url(path),), retry_schedule_s=())
    location = f"https://elsewhere.example/{OSC52}{CSI}"
    receiver.rule(path, lambda n: (302, {"Location": location}, HOSTILE.encode()))
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 1})
    wait_until(lambda: dead.get(delivery.id) is not None, what="the dead letter")
    for args in (["log"], ["log", "--failed"], ["dead", "list"], ["dead", "show", delivery.id]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert_printable(result.output)
        assert "\\x1b]52;c;cm0gLXJmIH4K\\x07" in result.output, args
    shown = CliRunner().invoke(main, ["dead", "show", delivery.id, "--json"])
    letter = json.loads(shown.stdout)
    assert letter["response"] == HOSTILE
    assert OSC52 in letter["reason"]
    (logged,) = [
        json.loads(line)
        for line in CliRunner().invoke(main, ["log", "--json"]).stdout.splitlines()
        if json.loads(line)["id"] == delivery.id
    ]
    assert OSC52 in logged["error"]


def test_the_test_command_escapes_the_receivers_answer(settings, receiver: Receiver) -> None:
    path = f"/osc-test-{uuid.uuid4().hex[:8]}"
    settings()
    receiver.rule(path, lambda n: (500, {}, HOSTILE.encode()))
    result = CliRunner().invoke(main, ["test", receiver.url(path)])
    assert result.exit_code == 1
    assert "HTTP 500" in result.output
    assert_printable(result.output)
    assert "hello\\x1b]52;c;" in result.output
    exact = CliRunner().invoke(main, ["test", receiver.url(path), "--json"])
    assert json.loads(exact.stdout)["response"] == HOSTILE


def test_listen_prints_a_hostile_request_escaped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import http.client

    argv = [sys.executable, "-m", "shahihooks", "listen", "--port", "0", "--count", "1"]
    proc = subprocess.Popen(
        [*argv, "--secret", SECRET],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        port = int(first.split("http://127.0.0.1:")[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        body = HOSTILE.encode()
        conn.request(
            "POST",
            "/",
            body=body,
            headers={"X-Shahi-Assist-Event": f"ticket.created{OSC52}", "webhook-id": "e"},
        )
        assert conn.getresponse().status == 401
        conn.close()
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert "✗ 401 ticket.created\\x1b]52;c;" in out
    assert_printable(out)
