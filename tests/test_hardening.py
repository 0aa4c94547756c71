"""Holes of the third review, closed: a trailing-dot address and an unsendable host name
are refused cleanly; reprs show no URL credentials; `listen` cuts a request that drips
and keeps no unverified body; `listen --secret-env`; doctor warns about a shared secret."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import shahihooks
from shahihooks import listen
from shahihooks.cli import main
from shahihooks.delivery import Job
from shahihooks.doctor import shared_secret_check
from shahihooks.endpoints import Endpoint
from shahihooks.errors import ConfigurationError, UnsafeTargetError
from shahihooks.listen import Listener, serve
from shahihooks.safety import check_url
from shahihooks.settings import Settings
from shahihooks.state import MessageRef, Target
from shahihooks.transport import post
from tests.conftest import SECRET, clean_env, connects, free_port, wait_until

BODY = b'{"id":"evt_h-1","event":"ticket.created"}'
CREDENTIALED = "https://hookuser:hookpass@hooks.example/in?token=hooktoken"


@pytest.mark.parametrize(
    "url",
    ["https://127.0.0.1./x", "https://2130706433./x", "https://10.0.0.1.:8443/x"],
)
def test_a_literal_address_with_a_trailing_dot_is_judged_as_the_address(url: str) -> None:
    with pytest.raises(UnsafeTargetError, match="private, loopback"):
        check_url(url, Settings())
    assert (
        check_url(
            url,
            Settings(
                allow_networks=Settings.from_env(
                    {"SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8 10.0.0.0/8"}
                ).allow_networks
            ),
        )
        == url
    )


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("a..example.com", "an empty label"),
        (".example.com", "an empty label"),
        ("a" * 64 + ".example.com", "a label of 64 characters"),
    ],
)
def test_an_unsendable_host_name_is_a_configuration_error_naming_the_url(
    host: str, why: str
) -> None:
    url = f"https://{host}/in"
    with pytest.raises(ConfigurationError, match=why) as info:
        check_url(url, Settings())
    assert url in str(info.value)
    with pytest.raises(ConfigurationError, match=why):
        Settings.from_env({"SHAHIHOOKS_URLS": url, "SHAHIHOOKS_SECRET": SECRET})
    sent = post(url, b"{}", {}, Settings())
    assert sent.status is None
    assert f"refused: '{url}' is not a valid URL" in (sent.error or "")


def test_endpoints_add_refuses_an_unsendable_host_in_one_line(settings) -> None:
    settings()
    result = CliRunner().invoke(main, ["endpoints", "add", "https://a..example.com/in"])
    assert result.exit_code == 1
    assert "Error: 'https://a..example.com/in' is not a valid URL" in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, UnicodeError)


def test_job_and_target_reprs_show_no_url_credentials() -> None:
    job = Job(MessageRef("evt_1-a", 1), CREDENTIALED, "ticket.created", 1, b'{"secret": 1}', None)
    target = Target(
        "evt_1-a", "t" * 32, CREDENTIALED, "https://***:***@hooks.example/in?***", 0, False
    )
    for shown in (repr(job), repr(target)):
        for secret in ("hookuser", "hookpass", "hooktoken"):
            assert secret not in shown
        assert "hooks.example/in" in shown
    assert '"secret"' not in repr(job)
    assert "<13 bytes>" in repr(job)


def test_listen_cuts_off_a_client_that_drips_one_byte_at_a_time(monkeypatch) -> None:
    monkeypatch.setattr(listen, "REQUEST_DEADLINE_S", 1.0)
    monkeypatch.setattr(listen, "CONNECTION_TIMEOUT_S", 5.0)  # each byte comes in time
    server = serve(Listener([SECRET]), "127.0.0.1", 0)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1])) as client:
            client.settimeout(0.2)
            client.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            cut = False
            while not cut and time.monotonic() - started < 20:
                try:
                    client.sendall(b"X")
                    cut = client.recv(1) == b""
                except TimeoutError:
                    continue
                except OSError:
                    cut = True
        assert cut, "the dripping client was never cut off"
    finally:
        server.shutdown()
        server.server_close()


def test_listen_keeps_no_unverified_body_and_bounds_the_bytes_it_keeps() -> None:
    unsigned = {"webhook-id": "e", "webhook-timestamp": "1", "webhook-signature": "v1,"}
    listener = Listener([SECRET])
    listener.handle(b"x" * 100_000, unsigned)
    (unverified,) = listener.heard
    assert unverified.valid is False
    assert len(unverified.body) == listen.UNVERIFIED_BODY_BYTES == listener.kept_bytes
    bounded = Listener([SECRET], history_bytes=3 * len(BODY))
    for n in range(5):
        headers = shahihooks.sign_headers(
            BODY, delivery_id=f"evt_h-{n}", event="e.x", secrets=SECRET
        )
        bounded.handle(BODY, headers)
    assert [h.delivery_id for h in bounded.heard] == ["evt_h-2", "evt_h-3", "evt_h-4"]
    assert bounded.kept_bytes == 3 * len(BODY) == sum(len(h.body) for h in bounded.heard)
    assert (bounded.received, bounded.verified) == (5, 5)


def test_listen_reads_its_secret_from_the_environment_variable_named() -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["listen", "--port", "0", "--secret-env", "NO_SUCH_VAR_X"])
    assert missing.exit_code == 2
    assert "NO_SUCH_VAR_X is not set" in missing.output
    weak = runner.invoke(
        main, ["listen", "--port", "0", "--secret-env", "WEAK_X"], env={"WEAK_X": "short"}
    )
    assert weak.exit_code == 1
    assert "$WEAK_X (--secret-env) is too short" in weak.output
    assert "short\n" not in weak.output


@pytest.mark.parametrize("how", ["--secret-env", "SHAHIHOOKS_SECRET"])
def test_listen_verifies_with_a_secret_from_the_environment(how: str) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "shahihooks", "listen", "--port", str(port), "--count", "1"]
    if how == "--secret-env":
        argv += ["--secret-env", "PARTNER_SECRET_X"]
        env = clean_env(PARTNER_SECRET_X=SECRET)
    else:
        env = clean_env(SHAHIHOOKS_SECRET=SECRET)
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    try:
        wait_until(lambda: connects(port), what="listener up")
        assert SECRET not in " ".join(proc.args)  # type: ignore[arg-type]
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = shahihooks.sign_headers(BODY, delivery_id="evt_h-1", event="e.x", secrets=SECRET)
        conn.request("POST", "/", body=BODY, headers=headers)
        assert conn.getresponse().status == 200
        conn.close()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert "✓" in out
    assert "1 received, 1 verified" in err


def test_doctor_warns_when_endpoints_of_different_hosts_share_the_global_secret() -> None:
    settings = Settings(secret=SECRET)
    one_host = [Endpoint("https://a.example/1"), Endpoint("https://a.example/2")]
    assert shared_secret_check(one_host, settings) is None
    own = [Endpoint("https://a.example/1"), Endpoint("https://b.example/1", secrets=("s" * 16,))]
    assert shared_secret_check(own, settings) is None
    shared = [Endpoint("https://a.example/1"), Endpoint("https://B.example./1"), *own]
    check = shared_secret_check(shared, settings)
    assert check is not None
    assert check.ok is False
    assert "3 endpoints on 2 hosts (a.example, b.example) share the global secret" in check.what
    assert "endpoints add URL --secret" in check.fix
    assert shared_secret_check(shared, Settings()) is None  # no global secret to share


def test_doctor_lists_the_shared_secret_warning(settings, receiver) -> None:  # type: ignore[no-untyped-def]
    settings(urls=(receiver.url("/a"), receiver.url("/b", host="localhost")))
    result = CliRunner().invoke(main, ["doctor", "--no-worker-check", "--json"])
    checks = json.loads(result.stdout)
    assert any(
        "2 endpoints on 2 hosts (127.0.0.1, localhost) share the global secret" in c["what"]
        and not c["ok"]
        for c in checks
    ), checks
