"""Settings from the environment: defaults, parsing, and refusals naming the bad value."""

from __future__ import annotations

import ipaddress

import pytest

from shahihooks.errors import ConfigurationError, UnsafeTargetError
from shahihooks.settings import Settings, Throttle


def test_defaults_follow_the_contract() -> None:
    s = Settings.from_env({})
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.broker_url == s.redis_url
    assert s.enabled is True
    assert s.urls == ()
    assert s.events is None
    assert s.retry_schedule_s == (60, 300, 1800)
    assert s.rate_limit == 10
    assert s.rate_window_s == 3600
    assert s.timeout_s == 15
    assert s.allow_http is False
    assert s.max_body_bytes == 1_048_576
    assert s.throttles == (Throttle("article.viewed", "article_id", 3600),)


def test_every_contract_variable_is_read() -> None:
    s = Settings.from_env(
        {
            "SHAHIHOOKS_REDIS_URL": "redis://r:1/2",
            "SHAHIHOOKS_BROKER_URL": "redis://b:1/3",
            "SHAHIHOOKS_ENABLED": "0",
            "SHAHIHOOKS_URLS": "https://a.example/h\nhttps://b.example/h  https://c.example/h",
            "SHAHIHOOKS_EVENTS": "ticket.created, ticket.closed",
            "SHAHIHOOKS_SECRET": "settings-secret-0123",
            "SHAHIHOOKS_SITE_URL": "https://help.example",
            "SHAHIHOOKS_RETRY_SCHEDULE": "1,2.5,3",
            "SHAHIHOOKS_RATE_LIMIT": "0",
            "SHAHIHOOKS_RATE_WINDOW": "60",
            "SHAHIHOOKS_TIMEOUT": "2.5",
            "SHAHIHOOKS_ALLOW_HTTP": "yes",
            "SHAHIHOOKS_ALLOW_NETWORKS": "127.0.0.0/8, ::1/128",
            "OTHER": "ignored",
        }
    )
    assert s.broker_url == "redis://b:1/3"
    assert s.enabled is False
    assert s.urls == ("https://a.example/h", "https://b.example/h", "https://c.example/h")
    assert s.events == ("ticket.created", "ticket.closed")
    assert s.secrets == ("settings-secret-0123",)
    assert s.site_url == "https://help.example"
    assert s.retry_schedule_s == (1, 2.5, 3)
    assert s.rate_limit == 0
    assert s.rate_window_s == 60
    assert s.timeout_s == 2.5
    assert s.allow_http is True
    assert s.allow_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )


def test_django_style_mapping_takes_python_values() -> None:
    s = Settings.from_mapping(
        {
            "URLS": ["https://a.example/h"],
            "SECRET": "settings-secret-0123",
            "RATE_LIMIT": 5,
            "ENABLED": True,
        }
    )
    assert s.urls == ("https://a.example/h",)
    assert s.rate_limit == 5


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RETRY_SCHEDULE", "60,five,1800", "'five' is not a number of seconds"),
        ("RETRY_SCHEDULE", "60,-1", "'-1' is not a non-negative number"),
        ("RATE_LIMIT", "-3", "must not be negative"),
        ("RATE_LIMIT", "ten", "'ten'"),
        ("RATE_WINDOW", "0", "must be positive"),
        ("TIMEOUT", "0", "positive number of seconds"),
        ("ENABLED", "maybe", "expected 1/0"),
        ("ALLOW_NETWORKS", "10.0.0.0/33", "'10.0.0.0/33' is not a CIDR network"),
        ("THROTTLE", "article.viewed:article_id", "is not event:field:seconds"),
    ],
)
def test_bad_values_name_the_variable_and_the_value(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({f"SHAHIHOOKS_{name}": value})
    assert f"SHAHIHOOKS_{name}={value!r}" in str(info.value)
    assert message in str(info.value)


def test_http_url_is_refused_unless_allowed() -> None:
    env = {
        "SHAHIHOOKS_URLS": "http://hooks.example/in",
        "SHAHIHOOKS_SECRET": "settings-secret-0123",
    }
    with pytest.raises(UnsafeTargetError, match=r"https:// URLs, got 'http://hooks.example/in'"):
        Settings.from_env(env)
    assert Settings.from_env({**env, "SHAHIHOOKS_ALLOW_HTTP": "1"}).urls


def test_urls_without_a_secret_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="SHAHIHOOKS_SECRET is not"):
        Settings.from_env({"SHAHIHOOKS_URLS": "https://hooks.example/in"})


def test_a_url_that_is_not_a_url_is_named() -> None:
    with pytest.raises(ConfigurationError, match="'hooks.example/in' is not an absolute"):
        Settings.from_env(
            {"SHAHIHOOKS_URLS": "hooks.example/in", "SHAHIHOOKS_SECRET": "settings-secret-0123"}
        )


def test_malformed_event_in_events_is_named() -> None:
    with pytest.raises(ConfigurationError, match="SHAHIHOOKS_EVENTS=.*'Ticket.Created'"):
        Settings.from_env({"SHAHIHOOKS_EVENTS": "Ticket.Created"})


def test_unknown_setting_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="SHAHIHOOKS_RATELIMIT"):
        Settings.from_env({"SHAHIHOOKS_RATELIMIT": "5"})
