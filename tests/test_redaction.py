"""URL credentials never shown: `redact_url` as a pure function, then every listing, output
and error message of a real run against a URL with a username, a password and a token."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from click.testing import CliRunner

import shahihooks
from shahihooks.cli import main
from shahihooks.safety import check_url, redact_text, redact_url
from shahihooks.settings import Settings
from tests.conftest import wait_until
from tests.receiver import Receiver


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example/in", "https://hooks.example/in"),
        ("https://user:pw@hooks.example:8443/in", "https://***:***@hooks.example:8443/in"),
        ("https://tok_live_1@hooks.example/in", "https://***@hooks.example/in"),
        ("https://hooks.example/in?token=abc&x=1", "https://hooks.example/in?***"),
        ("https://hooks.example/in#key=abc", "https://hooks.example/in#***"),
        ("https://u:p@h.example/a/b?k=v#f", "https://***:***@h.example/a/b?***#***"),
        ("https://a@b@h.example/x", "https://***@h.example/x"),
        ("https://[::1]:8443/x?t=1", "https://[::1]:8443/x?***"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://***:***@127.0.0.1:6379/0"),
        ("https:user:pw@h.example/x", "https:***@h.example/x"),
        ("user:pw@h.example/x", "***@h.example/x"),
        ("https://h.example/users/@me", "https://h.example/users/@me"),
        ("https://h.example/p?", "https://h.example/p?"),
        ("https://[::1", "https://[::1"),
        ("", ""),
        (
            "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "https://hooks.slack.com/services/T000/B000/***",
        ),
        (
            "https://Hooks.Slack.com.:443/services/T0/B0/x",
            "https://Hooks.Slack.com.:443/services/T0/B0/***",
        ),
        (
            "https://hooks.zapier.com/hooks/catch/123/abc/",
            "https://hooks.zapier.com/hooks/catch/123/***/",
        ),
        (
            "https://discord.com/api/webhooks/1234/tok-en_x",
            "https://discord.com/api/webhooks/1234/***",
        ),
        ("https://h.example/in/3f2a9c0d1e7b4a6f8c5d/x?t=1", "https://h.example/in/***/x?***"),
        (
            "https://h.example/in/550e8400-e29b-41d4-a716-446655440000",
            "https://h.example/in/***",
        ),
        (
            "https://h.example/hooks/incoming-webhook-2024",
            "https://h.example/hooks/incoming-webhook-2024",
        ),
        ("https://h.example/services/T0/B0/x", "https://h.example/services/T0/B0/x"),
        ("/services/T0/B0/xyz?token=1", "/services/T0/B0/***?***"),
    ],
)
def test_redact_url_masks_userinfo_query_and_fragment(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_url(shown) == shown, "redacting twice changes nothing"


@pytest.mark.parametrize("odd", [None, 42, ["https://u:p@h/"], object()])
def test_redact_url_never_raises(odd: object) -> None:
    assert redact_url(odd) == "***"


def test_redact_text_masks_a_secret_the_path_carries() -> None:
    url = "https://hooks.zapier.com/hooks/catch/123/zq7k2/"
    text = "Max retries exceeded with url: /hooks/catch/123/zq7k2/ (Caused by ...)"
    assert (
        redact_text(text, url)
        == "Max retries exceeded with url: /hooks/catch/123/***/ (Caused by ...)"
    )


def test_redact_text_masks_what_an_error_repeats() -> None:
    url = "https://tokuser:pw-secret@h.example/in?token=qtok"
    text = "HTTPSConnectionPool(host='h.example'): Max retries with url: /in?token=qtok (tokuser)"
    assert redact_text(text, url) == (
        "HTTPSConnectionPool(host='h.example'): Max retries with url: /in?*** (***)"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://user-7:pass-7@hooks.example/in?token=tok-7",
        "ftp://user-7:pass-7@hooks.example/in?token=tok-7",
        "https://user-7:pass-7@[::1/in?token=tok-7",
        "https://user-7:pass-7@hooks.example:99999/in?token=tok-7",
        "https://user-7:pass-7@10.0.0.1/in?token=tok-7",
    ],
)
def test_check_url_errors_show_the_url_redacted(url: str) -> None:
    with pytest.raises(shahihooks.ConfigurationError) as info:
        check_url(url, Settings())
    with pytest.raises(shahihooks.ConfigurationError) as loaded:
        Settings.from_env({"SHAHIHOOKS_URLS": url, "SHAHIHOOKS_SECRET": "s" * 16})
    for message in (str(info.value), str(loaded.value)):
        for secret in ("user-7", "pass-7", "tok-7"):
            assert secret not in message
    assert "***" in str(info.value)


USER, PASSWORD, TOKEN = "tokenuser-8f3a", "pw-9c1e77", "qtok-5d2b"


@pytest.mark.usefixtures("worker")
def test_credentials_in_a_url_are_masked_in_every_listing_and_output(
    settings, receiver: Receiver, redis_client, caplog: pytest.LogCaptureFixture
) -> None:
    path = f"/cred-{uuid.uuid4().hex[:8]}"
    url = f"https://{USER}:{PASSWORD}@127.0.0.1:{receiver.port}{path}?token={TOKEN}"
    s = settings(urls=(url,), retry_schedule_s=(0.2,))
    receiver.rule(f"{path}?token={TOKEN}", lambda n: 500)
    runner = CliRunner()
    outputs: dict[str, str] = {}
    with caplog.at_level(logging.INFO):
        emitted = runner.invoke(main, ["emit", "ticket.created", "--data", '{"ticket_id": 1}'])
        outputs["emit"] = emitted.output
        outputs["emit --json"] = runner.invoke(
            main, ["emit", "ticket.created", "--data", '{"ticket_id": 2}', "--json"]
        ).output
        wait_until(
            lambda: len(json.loads(runner.invoke(main, ["dead", "list", "--json"]).stdout)) == 2,
            what="both deliveries dead-lettered",
        )
    assert emitted.exit_code == 0, emitted.output
    shown = f"https://***:***@127.0.0.1:{receiver.port}{path}?***"
    assert shown in outputs["emit"]
    for args in (
        ["log"],
        ["log", "--json"],
        ["log", "--json", "--url", url],
        ["stats", "--json"],
        ["stats", "--json", "--url", url],
        ["dead", "list"],
        ["dead", "list", "--json"],
        ["endpoints", "list"],
        ["endpoints", "list", "--json"],
        ["doctor", "--json", "--no-worker-check"],
        ["test", url, "--json"],
    ):
        result = runner.invoke(main, args)
        outputs[" ".join(args)] = result.output
    assert shown in outputs["log --json --url " + url], "--url finds the masked rows"
    assert shown in outputs["stats --json --url " + url]
    for where, output in {**outputs, "worker and emit log": caplog.text}.items():
        for secret in (USER, PASSWORD, TOKEN):
            assert secret not in output, f"{secret} shown by {where}"
    for entry in redis_client.xrange(f"{s.prefix}:log"):
        text = json.dumps({k.decode(): v.decode() for k, v in entry[1].items()})
        assert all(secret not in text for secret in (USER, PASSWORD, TOKEN))
    for key in redis_client.scan_iter(match=f"{s.prefix}:stats:*"):
        fields = b" ".join(redis_client.hkeys(key)).decode()
        assert all(secret not in fields for secret in (USER, PASSWORD, TOKEN))
    # every key but the two that must hold the URL to send to it (urls, endpoints)
    for key in redis_client.scan_iter(match=f"{s.prefix}:*"):
        if key.decode().endswith((":urls", ":endpoints")):
            continue
        kind = redis_client.type(key).decode()
        dumped = {
            "hash": lambda k: redis_client.hgetall(k),
            "string": lambda k: redis_client.get(k),
            "zset": lambda k: redis_client.zrange(k, 0, -1),
            "list": lambda k: redis_client.lrange(k, 0, -1),
            "stream": lambda k: redis_client.xrange(k),
        }[kind](key)
        assert all(secret.encode() not in repr(dumped).encode() for secret in (USER, TOKEN)), key


def test_task_messages_carry_no_url_credentials(settings, redis_client) -> None:
    queue = f"shtest-cred-{uuid.uuid4().hex[:6]}"
    url = f"https://{USER}:{PASSWORD}@127.0.0.1:9/in?token={TOKEN}"
    settings(urls=(url,), queue=queue)
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 3})
    assert USER not in repr(delivery)
    try:
        (raw,) = redis_client.lrange(queue, 0, -1)
    finally:
        redis_client.delete(queue)
    for secret in (USER, PASSWORD, TOKEN):
        assert secret.encode() not in raw
    assert b"https://***:***@127.0.0.1:9/in?***" in raw.replace(b"\\u2192", "→".encode())


def test_urllib3_debug_lines_of_a_real_post_show_no_query_or_path_token(
    settings, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    from shahihooks.transport import post

    path = "/debug/3f2a9c0d1e7b4a6f8c5dpathtoken"
    url = receiver.url(path) + "?token=secretvalue"
    with caplog.at_level(logging.DEBUG):
        response = post(url, b"{}", {"Content-Type": "application/json"}, settings())
    assert response.status == 200
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any('"POST /debug/***?*** HTTP/1.1" 200' in line for line in lines), lines
    assert "secretvalue" not in caplog.text
    assert "pathtoken" not in caplog.text
