"""`shahihooks dashboard`: /metrics after known traffic through a real worker (parsed with
Prometheus's own parser), the pages, basic auth, CSRF, the refusal to serve a reachable
address without a password, and the pages' escaping."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

import shahihooks
from shahihooks.cli import main
from shahihooks.dashboard import DashboardServer, check_bind, pages, serve
from shahihooks.dashboard.data import EndpointRow, Overview
from shahihooks.errors import ConfigurationError
from shahihooks.health import EndpointHealth
from shahihooks.metrics import exposition
from shahihooks.overview import OTHER, Cell, Queues
from shahihooks.settings import Settings
from tests.conftest import wait_until
from tests.receiver import Receiver

SERIES = (
    "shahihooks_attempts",
    "shahihooks_attempt_duration_seconds",
    "shahihooks_dead_letters",
    "shahihooks_waiting_deliveries",
    "shahihooks_backlog_deliveries",
    "shahihooks_delivery_lag_seconds",
    "shahihooks_endpoint_up",
)


def start(settings: Settings, refresh_s: int = 10) -> tuple[DashboardServer, str]:
    server = serve(settings, "127.0.0.1", 0, refresh_s)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def dashboard() -> Iterator[Callable[[Settings], str]]:
    servers: list[DashboardServer] = []

    def run(settings: Settings) -> str:
        server, base = start(settings)
        servers.append(server)
        return base

    yield run
    for server in servers:
        server.shutdown()
        server.server_close()


def get(url: str, auth: str | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def samples(text: str) -> dict[str, list[Any]]:
    """family name -> its samples, through Prometheus's own text parser."""
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def total(found: dict[str, list[Any]], name: str, sample: str, **labels: str) -> float:
    return sum(
        s.value
        for s in found[name]
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.mark.usefixtures("worker")
def test_metrics_say_exactly_what_happened(
    settings: Callable[..., Settings], receiver: Receiver, dashboard: Callable[[Settings], str]
) -> None:
    tag = uuid.uuid4().hex[:8]
    good, bad = f"/good-{tag}", f"/bad-{tag}"
    receiver.rule(bad, lambda n: 503)
    # every delivery to it spends its four attempts: its circuit never opens here
    s = settings(urls=(receiver.url(good), receiver.url(bad)), circuit_threshold=1000)
    for i in range(10):
        shahihooks.emit("ticket.created", {"ticket_id": i})
    receiver.wait_for(good, 10)
    wait_until(
        lambda: len(json.loads(CliRunner().invoke(main, ["dead", "list", "--json"]).stdout)) == 10,
        timeout=60,
        what="10 dead letters",
    )
    dead_list = CliRunner().invoke(main, ["dead", "list", "--json"])
    base = dashboard(s)
    attempts = "shahihooks_attempts_total"
    good_url, bad_url = receiver.url(good), receiver.url(bad)

    # this test's endpoints: an earlier test's attempts still in flight may count after it
    def delivered_and_failed() -> bool:
        found = samples(get(base + "/metrics")[1])
        ok = total(found, "shahihooks_attempts", attempts, endpoint=good_url, outcome="delivered")
        failed = total(found, "shahihooks_attempts", attempts, endpoint=bad_url, outcome="failed")
        return ok == 10 and failed == len(receiver.requests_to(bad)) == 40

    wait_until(delivered_and_failed, timeout=30, what="every attempt counted")
    status, text, headers = get(base + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    found = samples(text)
    assert set(SERIES) <= set(found)
    assert total(found, "shahihooks_attempts", attempts, endpoint=bad_url, outcome="delivered") == 0
    assert (
        total(found, "shahihooks_attempts", attempts, endpoint=good_url, outcome="delivered") == 10
    )
    assert total(found, "shahihooks_attempts", attempts, endpoint=bad_url, outcome="failed") == len(
        receiver.requests_to(bad)
    )
    assert total(found, "shahihooks_attempts", attempts, endpoint=good_url, outcome="failed") == 0
    assert total(found, "shahihooks_dead_letters", "shahihooks_dead_letters") == len(
        json.loads(dead_list.stdout)
    )
    histogram = "shahihooks_attempt_duration_seconds"
    assert total(found, histogram, histogram + "_count", endpoint=good_url) == 10
    assert total(found, histogram, histogram + "_bucket", endpoint=bad_url, le="+Inf") == 40
    assert total(found, histogram, histogram + "_sum", endpoint=good_url) > 0
    up = {x.labels["endpoint"]: x.value for x in found["shahihooks_endpoint_up"]}
    assert up == {good_url: 1.0, bad_url: 1.0}
    assert total(found, "shahihooks_waiting_deliveries", "shahihooks_waiting_deliveries") == 0
    assert total(found, "shahihooks_delivery_lag_seconds", "shahihooks_delivery_lag_seconds") >= 0

    # the label cap: the rest is summed under "(other)", every sum still exact
    capped = samples(exposition(s, max_endpoints=1).decode())
    labels = {x.labels["endpoint"] for x in capped["shahihooks_attempts"]}
    assert labels == {bad_url, OTHER}  # the busiest: 40 attempts against 10
    # the sums are those uncapped: 10 delivered, and any an earlier test's attempts added
    delivered = total(found, "shahihooks_attempts", attempts, outcome="delivered")
    assert total(capped, "shahihooks_attempts", attempts, outcome="delivered") == delivered
    assert (
        total(capped, "shahihooks_attempts", attempts, endpoint=OTHER, outcome="delivered")
        == delivered
    )

    status, page, _ = get(base + "/")
    assert status == 200
    assert good_url in page
    assert bad_url in page
    assert "HTTP 503" in page  # the failing endpoint's last error


def test_basic_auth_is_required_when_set(
    settings: Callable[..., Settings], dashboard: Callable[[Settings], str]
) -> None:
    base = dashboard(settings(dashboard_auth="ops:pass-word:with-colon"))
    for path in ("/", "/metrics", "/dead"):
        status, _, headers = get(base + path)
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Basic ")
        assert get(base + path, "ops:wrong")[0] == 401
        assert get(base + path, "ops:pass-word:with-colon")[0] == 200


def test_a_reachable_address_is_refused_without_auth(settings: Callable[..., Settings]) -> None:
    settings()
    result = CliRunner().invoke(main, ["dashboard", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 1
    assert "SHAHIHOOKS_DASHBOARD_AUTH=user:password" in result.output
    assert "'0.0.0.0'" in result.output
    with pytest.raises(ConfigurationError, match="without a password"):
        check_bind("192.0.2.10", "")
    check_bind("0.0.0.0", "ops:pw")  # with a password: allowed
    check_bind("localhost", "")
    check_bind("::1", "")


def test_the_auth_setting_needs_a_colon_and_is_never_shown() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_mapping({"DASHBOARD_AUTH": "no-colon-here"})
    assert "SHAHIHOOKS_DASHBOARD_AUTH" in str(caught.value)
    assert "no-colon-here" not in str(caught.value)
    s = Settings.from_mapping({"DASHBOARD_AUTH": "ops:very-secret"})
    assert s.dashboard_auth == "ops:very-secret"
    assert "very-secret" not in repr(s)


def test_a_post_without_the_csrf_token_is_refused(
    settings: Callable[..., Settings], dashboard: Callable[[Settings], str]
) -> None:
    base = dashboard(settings())
    for form in (b"id=evt_x", b"id=evt_x&csrf=forged"):
        request = urllib.request.Request(base + "/dead/replay", data=form, method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        assert caught.value.code == 403


def test_pages_escape_what_receivers_and_operators_wrote(
    settings: Callable[..., Settings], dashboard: Callable[[Settings], str]
) -> None:
    evil = "<script>alert(1)</script>"
    health = EndpointHealth(
        "https://x.example/" + evil, "abc", "ok", 0, 0, None, None, "", None, None, evil
    )
    view = Overview([EndpointRow(health, Cell(), 0.0, 0, 0)], Queues(0, 0, {}, {}, 0.0))
    page = pages.index(view, 10)
    assert evil not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    _, _, headers = get(dashboard(settings()) + "/")
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_the_dashboard_command_is_in_django_and_flask() -> None:
    from shahihooks.contrib.django.management.commands.shahihooks import commands
    from shahihooks.contrib.flask import flask_commands

    assert commands.commands["dashboard"] is main.commands["dashboard"]
    assert flask_commands.commands["dashboard"] is main.commands["dashboard"]


def test_latency_quantiles_come_from_the_histogram_buckets() -> None:
    cell = Cell(n=100, ok=100, ms=0, buckets={"le10": 50, "le100": 45, "le1000": 4, "inf": 1})
    assert cell.quantile_ms(0.5) == 10
    assert cell.quantile_ms(0.95) == 100
    assert cell.quantile_ms(0.99) == 1000
    assert cell.quantile_ms(1.0) == float("inf")
    assert Cell().quantile_ms(0.5) is None
    assert cell.cumulative()[-1] == (float("inf"), 100)


def test_the_page_reloads_itself() -> None:
    assert '<meta http-equiv="refresh" content="7">' in pages.page("t", "", 7)
    assert "refresh" not in pages.page("t", "", 0)


@pytest.mark.django_db
def test_the_django_outbox_depth_is_a_gauge(settings: Callable[..., Settings]) -> None:
    from django.utils import timezone

    from shahihooks.contrib.django.models import OutboxEvent

    s = settings()
    OutboxEvent.objects.create(
        event="ticket.created", data="{}", key="k", next_try_at=timezone.now()
    )
    found = samples(exposition(s).decode())
    assert total(found, "shahihooks_outbox_events", "shahihooks_outbox_events") == 1
