"""Where the body style is set and shown: settings (environment, Django, Flask names),
endpoints, the CLI, the local listener, and the probe's verdict."""

from __future__ import annotations

import json

import flask
import pytest
from click.testing import CliRunner

from shahihooks.bodystyle import BodyStyle, render
from shahihooks.cli import main
from shahihooks.contrib.flask import Shahihooks
from shahihooks.endpoints import Endpoint
from shahihooks.errors import ConfigurationError
from shahihooks.listen import Listener
from shahihooks.probe import StyleReport
from shahihooks.settings import Settings
from shahihooks.signing import sign_headers
from tests.conftest import SECRET

PHP, STANDARD = BodyStyle.PHP, BodyStyle.STANDARD


def test_body_style_defaults_to_standard_and_is_read_from_every_configuration_source() -> None:
    assert Settings().body_style is STANDARD
    assert Settings.from_env({"SHAHIHOOKS_BODY_STYLE": "php"}).body_style is PHP
    django = Settings.from_mapping({"BODY_STYLE": "PHP"}, 'settings.SHAHIHOOKS["{}"]')
    assert django.body_style is PHP
    assert Settings(body_style="php").body_style is PHP


def test_a_bad_body_style_setting_names_the_variable_and_the_value() -> None:
    with pytest.raises(ConfigurationError, match=r"SHAHIHOOKS_BODY_STYLE='laravel' is not valid"):
        Settings.from_env({"SHAHIHOOKS_BODY_STYLE": "laravel"})
    with pytest.raises(ConfigurationError, match=r'SHAHIHOOKS\["BODY_STYLE"\]=\'js\''):
        Settings.from_mapping({"BODY_STYLE": "js"}, 'settings.SHAHIHOOKS["{}"]')


def test_flask_config_sets_the_body_style(settings) -> None:
    settings()
    app = flask.Flask(__name__)
    app.config["SHAHIHOOKS_BODY_STYLE"] = "php"
    ext = Shahihooks(app)
    assert ext.settings_for(app).body_style is PHP


def test_endpoint_body_style_round_trips_and_older_records_read_as_standard() -> None:
    endpoint = Endpoint("https://shop.example/hook.php", body_style="php")
    assert endpoint.body_style is PHP
    assert json.loads(endpoint.to_json())["body_style"] == "php"
    assert Endpoint.from_json(endpoint.to_json()) == endpoint
    assert Endpoint.from_json('{"url": "https://shop.example/old"}').body_style is STANDARD


def test_an_endpoint_with_a_bad_body_style_is_refused_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="body style 'laravel' is not one of"):
        Endpoint("https://shop.example/hook.php", body_style="laravel")


def test_endpoints_add_sets_the_style_and_list_shows_it(settings) -> None:
    s = settings(urls=("https://127.0.0.1:9/env",), body_style="php")
    url = "https://127.0.0.1:9/stored"
    runner = CliRunner()
    added = runner.invoke(main, ["endpoints", "add", url, "--body-style", "php"])
    assert added.exit_code == 0, added.output
    rows = json.loads(runner.invoke(main, ["endpoints", "list", "--json"]).stdout)
    assert {r["url"]: r["body_style"] for r in rows} == {url: "php", s.urls[0]: "php"}
    text = runner.invoke(main, ["endpoints", "list"]).output
    header, *lines = text.splitlines()
    assert header.split() == ["HEALTH", "URL", "EVENTS", "SECRET", "BODY", "SOURCE"]
    assert [line.split()[-2:] for line in lines if url in line] == [["php", "store"]]
    runner.invoke(main, ["endpoints", "add", url])
    rows = json.loads(runner.invoke(main, ["endpoints", "list", "--json"]).stdout)
    assert [r["body_style"] for r in rows if r["url"] == url] == ["standard"]
    bad = runner.invoke(main, ["endpoints", "add", url, "--body-style", "laravel"])
    assert bad.exit_code == 2
    assert "'laravel' is not one of 'standard', 'php'" in bad.output


def test_listener_with_php_accepts_only_what_the_page_php_handler_accepts() -> None:
    standard = b'{"event":"ticket.created","data":{"url":"https://example.com/t/1/"}}'
    as_php = render(standard, PHP)
    listener = Listener([SECRET], php=True)
    plain = Listener([SECRET])
    for body, php_status in ((as_php, 200), (standard, 401)):
        headers = sign_headers(body, delivery_id="evt_1-a", event="ticket.created", secrets=SECRET)
        assert listener.handle(body, headers) == php_status
        assert plain.handle(body, headers) == 200  # the raw body verifies in either style
    assert listener.handle(as_php, {}) == 401
    assert "no X-Shahi-Assist-Signature header" in listener.heard[-1].reason


@pytest.mark.parametrize(
    ("standard", "php", "verified", "fix"),
    [
        (401, 200, ["php"], "--body-style php"),
        (200, 401, ["standard"], "--body-style standard"),
        (200, 200, ["standard", "php"], ""),
        (401, 401, [], ""),
        (500, 200, ["php"], ""),  # a 500 says nothing about signatures: no verdict
        (None, 401, [], ""),
    ],
)
def test_the_probe_verdict_follows_the_answers(
    standard: int | None, php: int | None, verified: list[str], fix: str
) -> None:
    report = StyleReport({STANDARD: standard, PHP: php})
    assert [str(s) for s in report.verified] == verified
    assert (fix in report.fix("https://x.example/h")) if fix else not report.fix("u")
    assert report.tells == all(s in (200, 401) for s in (standard, php))
