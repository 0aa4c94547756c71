"""The page's PHP and Laravel handlers, run by real PHP (`php -S`), receiving real deliveries
from the real test worker: the `php` body style verifies, `standard` does not where the bytes
differ. Each receiver records what it decided per request (tests/php/record.php)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import standardwebhooks
from click.testing import CliRunner

import shahihooks
from shahihooks.bodystyle import BodyStyle, render
from shahihooks.cli import main
from shahihooks.connections import redis_client as client_for
from shahihooks.endpoints import Endpoint, EndpointStore
from shahihooks.events import BUILTIN_EVENTS
from shahihooks.keys import Keys
from shahihooks.signing import sign_headers
from shahihooks.transport import post
from tests.conftest import SECRET, clean_env, connects, free_port, wait_until
from tests.phptools import PhpReceiver, start_php_receiver

pytestmark = pytest.mark.usefixtures("worker")

WHSEC = "whsec_" + base64.b64encode(SECRET.encode()).decode()

# Sent as ticket.created data: what PHP's json_encode writes differently from us.
HOSTILE: dict[str, dict[str, Any]] = {
    "beyond the BMP": {"title": "😀 𝄞 🇫🇷 café", "ticket_url": "https://example.com/t/😀/"},
    "slashes": {"path": "/a/b/c/", "pattern": "^https?://", "escaped": "\\/"},
    "quotes and backslashes": {"q": 'say "hi"', "win": "C:\\Users\\x\\", "mix": '\\"/\\'},
    "empty objects and arrays": {"custom_fields": {}, "tags": [], "n": {"a": {}, "b": [{}, []]}},
    "index-like keys": {
        "in_order": {"0": "a", "1": "b"},
        "out_of_order": {"1": "a", "0": "b"},
        "gap": {"0": "a", "2": "b"},
        "padded": {"00": "x"},
        "negative": {"-1": "x"},
    },
    "floats": {
        "ratio": 0.1,
        "whole": 10.0,
        "tiny": 1e-7,
        "small": 0.00001,
        "big": 1e25,
        "beyond_int64": 2**64,
        "negative_zero": -0.0,
        "third": 1 / 3,
    },
    "nested lists": {"matrix": [[1, 2], [3, [4, [5, []]]]], "mixed": [None, True, 1.5, {"k": []}]},
    "control characters": {"text": "line\nbreak\ttab\u0001\u001f\u007f", "seps": "\u2028\u2029"},
}


@pytest.fixture(scope="module")
def page_php(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhpReceiver]:
    receiver = start_php_receiver("page_handler.php", SECRET, tmp_path_factory.mktemp("page"))
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def laravel_php(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhpReceiver]:
    receiver = start_php_receiver("laravel_handler.php", SECRET, tmp_path_factory.mktemp("lara"))
    yield receiver
    receiver.stop()


def path(name: str) -> str:
    return f"/{name}-{uuid.uuid4().hex[:8]}"


def examples() -> dict[str, tuple[str, dict[str, Any]]]:
    """The ten built-in events' example payloads, by event name."""
    return {e.name: (e.name, dict(e.example)) for e in BUILTIN_EVENTS}


def hostile(*leave_out: str) -> dict[str, tuple[str, dict[str, Any]]]:
    return {k: ("ticket.created", v) for k, v in HOSTILE.items() if k not in leave_out}


def emit_each(payloads: dict[str, tuple[str, dict[str, Any]]], url: str) -> dict[str, str]:
    """Emit each payload; return its delivery id to `url`, by label."""
    ids = {}
    for label, (event, data) in payloads.items():
        (delivery,) = [d for d in shahihooks.emit(event, data) if d.url == url]
        ids[label] = delivery.id
    return ids


def first_requests(receiver: PhpReceiver, ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Wait until the receiver has had each delivery; its first request, by label."""

    def arrived() -> dict[str, dict[str, Any]] | None:
        got: dict[str, dict[str, Any]] = {}
        for record in receiver.for_ids(set(ids.values())):
            got.setdefault(record["id"], record)
        return {k: got[i] for k, i in ids.items()} if len(got) == len(ids) else None

    found = wait_until(arrived, timeout=30, what=f"{len(ids)} deliveries at {receiver.script}")
    assert isinstance(found, dict)
    return found


def test_page_php_handler_verifies_every_example_and_hostile_payload_in_php_style(
    settings, page_php: PhpReceiver
) -> None:
    url = page_php.url(path("page"))
    settings(urls=(url,), allow_http=True, body_style="php")
    payloads = {**examples(), **hostile()}
    got = first_requests(page_php, emit_each(payloads, url))
    assert [label for label, r in got.items() if not r["verified"]] == []
    assert len(got) == len(BUILTIN_EVENTS) + len(HOSTILE)
    for record in got.values():
        body = record["body"]
        assert render(body, BodyStyle.PHP) == body  # PHP would write these very bytes
        headers = {k: record[k] for k in ("id", "timestamp", "signature")}
        webhook_headers = {f"webhook-{k}": v for k, v in headers.items()}
        assert standardwebhooks.Webhook(WHSEC).verify(body, webhook_headers)["id"] == record["id"]
    assert b"https:\\/\\/example.com\\/ticket\\/login-issue\\/" in got["ticket.created"]["body"]
    assert b'"custom_fields":[]' in got["empty objects and arrays"]["body"]


def test_page_php_handler_rejects_the_standard_style_where_the_bytes_differ(
    settings, page_php: PhpReceiver, redis_client: redis.Redis
) -> None:
    url = page_php.url(path("standard"))
    s = settings(urls=(url,), allow_http=True, retry_schedule_s=(0.2,))
    ids = emit_each(
        {e: examples()[e] for e in ("ticket.created", "ticket.closed", "ticket.status_changed")},
        url,
    )
    got = first_requests(page_php, ids)
    assert not got["ticket.created"]["verified"]  # its ticket_url has slashes
    assert got["ticket.closed"]["verified"]  # plain ASCII, no slash: the same bytes
    assert got["ticket.status_changed"]["verified"]
    dead = Keys(s.prefix).dead(ids["ticket.created"])
    wait_until(lambda: redis_client.exists(dead), what="the rejected delivery dead-lettered")
    assert b"HTTP 401" in redis_client.hget(dead, "reason")


def test_a_stored_endpoint_in_php_style_is_verified_while_the_default_stays_standard(
    settings, page_php: PhpReceiver
) -> None:
    php_url, standard_url = page_php.url(path("stored-php")), page_php.url(path("stored-std"))
    s = settings(allow_http=True, retry_schedule_s=())
    store = EndpointStore(client_for(s.redis_url), s)
    store.add(Endpoint(php_url, events=("ticket.created",), body_style="php"))
    store.add(Endpoint(standard_url, events=("ticket.created",)))
    event, data = examples()["ticket.created"]
    deliveries = {d.url: d.id for d in shahihooks.emit(event, data)}
    got = first_requests(page_php, {"php": deliveries[php_url], "std": deliveries[standard_url]})
    assert got["php"]["verified"]
    assert not got["std"]["verified"]


def test_laravel_handler_verifies_the_php_style(settings, laravel_php: PhpReceiver) -> None:
    url = laravel_php.url(path("laravel"))
    # an empty site_url, or U+2028/2029 alone, become null in Laravel's middleware: see below
    settings(urls=(url,), allow_http=True, body_style="php", site_url="https://example.com")
    payloads = {**examples(), **hostile("control characters")}
    got = first_requests(laravel_php, emit_each(payloads, url))
    assert [label for label, r in got.items() if not r["verified"]] == []


def test_laravel_middleware_changes_empty_and_padded_strings_so_no_style_matches(
    settings, laravel_php: PhpReceiver, page_php: PhpReceiver
) -> None:
    laravel_url, page_url = laravel_php.url(path("trim")), page_php.url(path("trim"))
    site = "https://example.com"
    settings(
        urls=(laravel_url, page_url),
        allow_http=True,
        body_style="php",
        site_url=site,
        retry_schedule_s=(),
    )
    for data in ({"ticket_id": 1, "note": ""}, {"ticket_id": 2, "note": " padded "}):
        ids = {d.url: d.id for d in shahihooks.emit("ticket.created", data)}
        (at_laravel,) = first_requests(laravel_php, {"x": ids[laravel_url]}).values()
        (at_page,) = first_requests(page_php, {"x": ids[page_url]}).values()
        assert not at_laravel["verified"]  # TrimStrings / ConvertEmptyStringsToNull
        assert at_page["verified"]
    settings(urls=(laravel_url,), allow_http=True, body_style="php", retry_schedule_s=())
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 3})
    (at_laravel,) = first_requests(laravel_php, {"x": delivery.id}).values()
    assert not at_laravel["verified"]  # "site_url":"" becomes null too


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shahihooks", *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=60,
    )


def test_test_command_sends_the_php_style_and_a_401_says_which_style_verifies(
    page_php: PhpReceiver,
) -> None:
    url = page_php.url(path("cli"))
    env = {
        "SHAHIHOOKS_SECRET": SECRET,
        "SHAHIHOOKS_ALLOW_HTTP": "1",
        "SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
        "SHAHIHOOKS_SITE_URL": "https://example.com",  # a slash in every test body
    }
    ok = run_cli("test", url, "--body-style", "php", "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["body_style"] == "php"
    assert json.loads(ok.stdout)["status"] == 200

    failed = run_cli("test", url, "--json", env=env)
    assert failed.returncode == 1
    result = json.loads(failed.stdout)
    assert result["status"] == 401
    assert result["body_styles"]["verified"] == ["php"]
    assert result["body_styles"]["statuses"] == {"standard": 401, "php": 200}

    text = run_cli("test", url, env=env).stdout
    assert "the receiver verifies the php body style only" in text
    assert f"shahihooks endpoints add {url} --body-style php" in text

    as_php = run_cli("test", url, env={**env, "SHAHIHOOKS_BODY_STYLE": "php"})
    assert as_php.returncode == 0, as_php.stdout


def test_doctor_probes_an_endpoint_that_got_401_and_names_the_style_it_verifies(
    settings, page_php: PhpReceiver
) -> None:
    url = page_php.url(path("doctor"))
    settings(urls=(url,), allow_http=True, site_url="https://example.com", retry_schedule_s=())
    event, data = examples()["ticket.created"]
    shahihooks.emit(event, data)
    wait_until(lambda: _logged_401(url), what="a 401 in the delivery log")
    result = CliRunner().invoke(main, ["doctor", "--no-worker-check", "--json"])
    assert result.exit_code == 1
    (probe,) = [c for c in json.loads(result.stdout) if "probe" in c["what"]]
    assert probe["ok"] is False
    assert "got 401 in the standard body style" in probe["what"]
    assert "verifies the php body style only" in probe["what"]
    assert "--body-style php" in probe["fix"]

    settings(urls=(url,), allow_http=True, site_url="https://example.com", body_style="php")
    result = CliRunner().invoke(main, ["doctor", "--no-worker-check", "--json"])
    (probe,) = [c for c in json.loads(result.stdout) if "probe" in c["what"]]
    assert probe["ok"] is True  # the 401s are past; the configured style verifies now


def _logged_401(url: str) -> bool:
    result = CliRunner().invoke(main, ["log", "--url", url, "--json"])
    return any(json.loads(line)["status"] == 401 for line in result.stdout.splitlines())


def test_listen_php_verifies_as_the_page_php_handler_does(settings) -> None:
    port = free_port()
    argv = ["listen", "--port", str(port), "--secret", SECRET, "--php", "--json", "--count", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "shahihooks", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        s = settings(allow_http=True)
        wait_until(lambda: connects(port), what="listener up")
        standard = json.dumps({"event": "ticket.created", "url": "https://example.com/t/1/"})
        for body in (render(standard.encode(), "php"), standard.encode()):
            headers = sign_headers(body, delivery_id="evt_1-a", event="x.y", secrets=SECRET)
            post(f"http://127.0.0.1:{port}/hook", body, headers, s)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["valid"] is True
    assert second["valid"] is False
    assert "json_encode(json_decode(body))" in second["reason"]
    assert "2 received, 1 verified" in err
