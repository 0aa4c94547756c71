"""Secrets: at least 16 bytes (after `whsec_` decoding), refused naming the setting and never
showing the value; only `v1,` Standard signatures; every repr of something holding a secret
shows ***."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from click.testing import CliRunner

import shahihooks
from shahihooks.cli import main
from shahihooks.endpoints import Endpoint, EndpointStore
from shahihooks.hooks import Attempt
from shahihooks.settings import Settings
from shahihooks.signing import secret_key, sign_headers

SHORT = "fifteen-bytes!!"  # 15 bytes
LONG = "sixteen-bytes!!!"  # 16 bytes
BODY = b'{"id":"evt_s-1","event":"ticket.created"}'


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


def test_a_secret_of_sixteen_bytes_is_the_shortest_accepted() -> None:
    assert len(SHORT.encode()) == 15
    assert secret_key(LONG) == LONG.encode()
    assert secret_key(whsec(b"k" * 16)) == b"k" * 16
    with pytest.raises(shahihooks.ConfigurationError, match="too short: 15 bytes"):
        secret_key(SHORT)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SECRET", SHORT),
        ("SECRET", whsec(b"k" * 15)),  # long as text, 15 bytes of key
        ("SECRET", "whsec_"),
        ("OLD_SECRETS", f"{LONG} {SHORT}"),
    ],
)
def test_a_weak_secret_is_refused_naming_the_variable_not_the_value(name: str, value: str) -> None:
    with pytest.raises(shahihooks.ConfigurationError) as info:
        Settings.from_env({f"SHAHIHOOKS_{name}": value})
    message = str(info.value)
    assert f"SHAHIHOOKS_{name}" in message
    for secret in value.split():
        assert secret == "whsec_" or secret not in message  # the bare prefix holds no secret
    assert "short" in message or "nothing after it" in message


def test_django_and_flask_names_are_used_for_a_weak_secret() -> None:
    with pytest.raises(shahihooks.ConfigurationError, match=r'settings.SHAHIHOOKS\["SECRET"\]'):
        Settings.from_mapping({"SECRET": SHORT}, 'settings.SHAHIHOOKS["{}"]')


def test_settings_built_directly_refuse_a_weak_secret() -> None:
    with pytest.raises(shahihooks.ConfigurationError, match="SHAHIHOOKS_SECRET is too short"):
        Settings(secret=SHORT)
    with pytest.raises(shahihooks.ConfigurationError, match="SHAHIHOOKS_OLD_SECRETS"):
        Settings(secret=LONG, old_secrets=("x",))


def test_a_bad_whsec_secret_never_shows_the_value() -> None:
    with pytest.raises(shahihooks.ConfigurationError, match="not valid base64") as info:
        Settings.from_env({"SHAHIHOOKS_SECRET": "whsec_!!not-base64-at-all!!"})
    assert "not-base64" not in str(info.value)
    assert "SHAHIHOOKS_SECRET" in str(info.value)


def test_signing_and_verifying_refuse_a_weak_secret() -> None:
    with pytest.raises(shahihooks.ConfigurationError, match="too short"):
        sign_headers(BODY, delivery_id="evt_s-1", event="e.x", secrets=SHORT)
    page = "sha256=" + hmac.new(SHORT.encode(), BODY, hashlib.sha256).hexdigest()
    with pytest.raises(shahihooks.ConfigurationError, match="too short"):
        shahihooks.verify(BODY, {"X-Shahi-Assist-Signature": page}, SHORT)


def test_the_store_refuses_an_endpoint_with_a_weak_secret(settings, redis_client) -> None:
    s = settings()
    store = EndpointStore(redis_client, s)
    with pytest.raises(shahihooks.ConfigurationError, match="--secret") as info:
        store.add(Endpoint("https://127.0.0.1:9/weak", secrets=(SHORT,)))
    assert SHORT not in str(info.value)
    assert store.get("https://127.0.0.1:9/weak") is None


def test_cli_options_name_a_weak_secret(settings, tmp_path) -> None:
    settings()
    (tmp_path / "body.json").write_bytes(BODY)
    runner = CliRunner()
    for args in (
        ["endpoints", "add", "https://127.0.0.1:9/weak", "--secret", SHORT],
        ["verify", "--secret", SHORT, "--signature", "sha256=00", str(tmp_path / "body.json")],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 1, args
        assert "--secret" in result.output
        assert "too short" in result.output
        assert SHORT not in result.output


def test_only_v1_standard_signatures_are_accepted() -> None:
    now = int(time.time())
    mac = hmac.new(LONG.encode(), f"m.{now}.".encode() + BODY, hashlib.sha256).digest()
    signature = base64.b64encode(mac).decode()
    headers = {"webhook-id": "m", "webhook-timestamp": str(now)}
    for prefix in ("v1a,", "v2,", "V1,", "v1 ,", ","):
        with pytest.raises(shahihooks.InvalidSignature):
            shahihooks.verify(BODY, {**headers, "webhook-signature": prefix + signature}, LONG)
    assert shahihooks.verify(BODY, {**headers, "webhook-signature": "v1," + signature}, LONG)


def test_settings_repr_masks_secrets_and_url_credentials() -> None:
    s = Settings(
        secret="global-secret-value-1",
        old_secrets=("old-secret-value-2",),
        urls=("https://user-9:pass-9@hooks.example/in?token=tok-9",),
        redis_url="redis://:redis-pass-9@127.0.0.1:6379/0",
    )
    shown = repr(s)
    for secret in ("global-secret-value-1", "old-secret-value-2", "user-9", "pass-9", "tok-9"):
        assert secret not in shown
    assert "redis-pass-9" not in shown
    assert "secret='***'" in shown
    assert "old_secrets=('***',)" in shown
    assert "https://***:***@hooks.example/in?***" in shown
    assert "redis://***:***@127.0.0.1:6379/0" in shown
    assert "rate_limit=10" in shown


def test_endpoint_and_attempt_reprs_mask_secrets() -> None:
    url = "https://user-9:pass-9@hooks.example/in?token=tok-9"
    endpoint = repr(Endpoint(url, secrets=("endpoint-secret-value",)))
    assert "endpoint-secret-value" not in endpoint
    assert "secrets=('***',)" in endpoint
    assert "https://***:***@hooks.example/in?***" in endpoint
    attempt = repr(Attempt("evt_1-a", url, "ticket.created", 1, BODY, 200, None, 0.1, "delivered"))
    for secret in ("user-9", "pass-9", "tok-9"):
        assert secret not in attempt
