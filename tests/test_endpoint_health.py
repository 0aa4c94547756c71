"""One endpoint's trouble stays with that endpoint: the adaptive limit on attempts in flight,
the circuit breaker, disabling (by an operator, by removal, automatically) and the
operational events that tell the operators."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid

import pytest
import redis
from click.testing import CliRunner

import shahihooks
from shahihooks import dead, health
from shahihooks.cli import main
from shahihooks.endpoints import Endpoint, EndpointStore
from shahihooks.keys import Keys, url_tag
from tests.conftest import SECRET, ScriptKeys, wait_until
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("worker")

OPS_SECRET = "ops-secret-0123456789abcdef"


def _path(name: str) -> str:
    return f"/{name}-{uuid.uuid4().hex[:8]}"


def _hang(seconds: float):  # type: ignore[no-untyped-def]
    def rule(_n: int) -> int:
        time.sleep(seconds)
        return 200

    return rule


@pytest.mark.parametrize(
    ("status", "error", "permanent", "signal"),
    [
        (200, None, False, "ok"),
        (204, None, False, "ok"),
        (None, "timeout: no complete answer within 15 s", False, "congested"),
        (None, "connection error: refused", False, "congested"),
        (500, None, False, "congested"),
        (503, None, False, "congested"),
        (429, None, False, "congested"),
        (400, None, False, "failed"),
        (401, None, False, "failed"),
        (302, None, False, "failed"),
        (None, "refused: a private address", True, "failed"),
    ],
)
def test_what_an_attempt_says_of_its_endpoint(
    status: int | None, error: str | None, permanent: bool, signal: str
) -> None:
    assert health.signal_for(status, error, permanent) == signal


def test_a_hanging_endpoint_holds_two_slots_and_the_healthy_one_keeps_its_pace(
    settings, receiver: Receiver
) -> None:
    hang, ok = _path("hang"), _path("ok")
    released = threading.Event()
    # it hangs past the worker's timeout until the test ends, then answers: its attempts
    # leave no worker thread held (nor retries going) into the tests after this one
    receiver.rule(hang, lambda _n: (released.wait(40), 200)[1])
    s = settings(urls=(receiver.url(hang), receiver.url(ok)), rate_limit=0, timeout_s=20)
    try:
        start = time.monotonic()
        sent = [shahihooks.emit("ticket.created", {"ticket_id": i}) for i in range(60)]
        receiver.wait_for(ok, 60, timeout=30)
        took = time.monotonic() - start
        # the worker has 16 slots: the hanging endpoint's limit starts at 2, so it never holds
        # more than two of them, and the healthy endpoint is served by the other fourteen;
        # held behind the hanging one, it would wait out the 20 s timeout (a loaded machine
        # takes a few seconds for the 120 emits and 60 deliveries)
        assert took < 15, f"the healthy endpoint waited for the hanging one ({took:.1f} s)"
        assert len(receiver.requests_to(hang)) <= 2
        (sick,) = health.endpoint_health(s, [receiver.url(hang)])
        assert sick.in_flight <= 2
        # its deliveries wait in its backlog, not in worker slots, and spend no attempt there
        wait_until(
            lambda: _deferrals(s, receiver.url(hang)) >= 50,
            what="the hanging endpoint's deliveries deferred",
        )
    finally:
        released.set()
    done = ScriptKeys(s.prefix).done
    client = redis.Redis.from_url(s.redis_url)
    wait_until(
        lambda: all(client.get(done(d.id)) == b"ok" for pair in sent for d in pair),
        timeout=30,
        what="every delivery, the hanging endpoint's once it answers",
    )


def _deferrals(s: shahihooks.Settings, url: str) -> int:
    client = redis.Redis.from_url(s.redis_url)
    return sum(
        1
        for _, e in client.xrange(Keys(s.prefix).log)
        if e[b"url"].decode() == url and e[b"outcome"] == b"deferred"
    )


def test_the_circuit_opens_and_waiting_behind_it_spends_no_retry(
    settings, receiver: Receiver
) -> None:
    path = _path("flaky")
    receiver.rule(path, lambda n: 500 if n <= 6 else 200)
    events: list[tuple[str, dict[str, object]]] = []
    s = settings(
        urls=(receiver.url(path),),
        retry_schedule_s=(1, 1, 1, 1, 1),
        circuit_threshold=3,
        circuit_cooldown_s=1,
        circuit_cooldown_max_s=1,
    )
    shahihooks.hooks.on_ops_event(lambda event, data: events.append((event, data)))
    sent = [shahihooks.emit("ticket.created", {"ticket_id": i})[0] for i in range(5)]
    wait_until(lambda: any(e == "endpoint.failing" for e, _ in events), what="failing")
    (open_,) = health.endpoint_health(s, [receiver.url(path)])
    assert open_.state in ("open", "disabled") or open_.consecutive_failures >= 3
    got = receiver.wait_for(path, 11, timeout=30)
    delivered = {r.header("webhook-id") for r in got if r.status == 200}
    assert delivered == {d.id for d in sent}
    wait_until(lambda: any(e == "endpoint.recovered" for e, _ in events), what="recovered")
    time.sleep(1.5)  # nothing more is sent: every delivery is done
    assert len(receiver.requests_to(path)) == 11  # 6 failures, 5 deliveries, no dead letter
    assert dead.list_ids(s) == []
    assert [e for e, _ in events].count("endpoint.failing") == 1
    (closed,) = health.endpoint_health(s, [receiver.url(path)])
    assert closed.state in ("ok", "limited")
    assert closed.consecutive_failures == 0


def test_disable_mid_retry_stops_sending_and_enable_recover_replays_in_order(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    path = _path("disabled")
    answer = {"status": 500}
    receiver.rule(path, lambda n: answer["status"])
    url = receiver.url(path)
    # one attempt at a time: the replays arrive in the order they are released
    s = settings(urls=(url,), retry_schedule_s=(1, 1, 1), endpoint_concurrency=1)
    first = shahihooks.emit("ticket.created", {"ticket_id": 1})[0]
    receiver.wait_for(path, 1)
    runner = CliRunner()
    result = runner.invoke(main, ["endpoints", "disable", url])
    assert result.exit_code == 0, result.output
    seen = len(receiver.requests_to(path))
    later = shahihooks.emit("ticket.created", {"ticket_id": 2})
    assert [d.status for d in later] == ["dead"]
    wait_until(lambda: dead.get(first.id, s) is not None, timeout=10, what="dead letter")
    time.sleep(2.5)  # its retry was due within a second: nothing is sent
    assert len(receiver.requests_to(path)) == seen
    letter = dead.get(first.id, s)
    assert letter is not None
    assert "endpoint disabled" in letter.reason
    listed = runner.invoke(main, ["endpoints", "list", "--json"])
    (row,) = [r for r in json.loads(listed.stdout) if r["url"] == url]
    assert row["state"] == "disabled"
    assert row["enabled"] is False
    answer["status"] = 200
    result = runner.invoke(main, ["endpoints", "enable", url, "--recover"])
    assert result.exit_code == 0, result.output
    assert "2 dead letter(s) replayed" in result.output
    got = receiver.wait_for(path, seen + 2, timeout=15)
    order = [r.header("webhook-id") for r in got[seen:]]
    assert order == [first.id, later[0].id]  # in the order they were emitted


def test_a_url_removed_from_the_settings_gets_nothing_more(settings, receiver: Receiver) -> None:
    gone, kept = _path("gone"), _path("kept")
    receiver.rule(gone, lambda n: 500)
    s = settings(urls=(receiver.url(gone), receiver.url(kept)), retry_schedule_s=(1, 1, 1))
    (delivery, _) = shahihooks.emit("ticket.created", {"ticket_id": 1})
    receiver.wait_for(gone, 1)
    settings(urls=(receiver.url(kept),), retry_schedule_s=(1, 1, 1))  # the worker restarted
    wait_until(lambda: dead.get(delivery.id, s) is not None, timeout=10, what="dead letter")
    letter = dead.get(delivery.id, s)
    assert letter is not None
    assert "endpoint removed" in letter.reason
    assert len(receiver.requests_to(gone)) == 1


def test_a_stored_endpoint_whose_name_stops_resolving_fails_only_its_own_delivery(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    ok = _path("ok")
    s = settings(urls=(receiver.url(ok),))
    # stored when its name resolved; now it does not (.invalid never does)
    broken = Endpoint(f"https://gone-{uuid.uuid4().hex[:6]}.invalid/hook")
    redis_client.hset(Keys(s.prefix).endpoints, broken.url, broken.to_json())
    result = CliRunner().invoke(main, ["emit", "ticket.created", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["url"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {receiver.url(ok), broken.url}
    receiver.wait_for(ok, 1)
    # its own attempt failed on the schedule (a transient failure), nothing else did
    log = Keys(s.prefix).log
    wait_until(
        lambda: any(
            e[b"id"].decode() == rows[broken.url]["id"] and e[b"outcome"] == b"retry"
            for _, e in redis_client.xrange(log)
        ),
        what="its attempt logged as a retry",
    )


def test_a_private_address_behind_a_name_is_a_dead_letter_at_once(
    settings, receiver: Receiver
) -> None:
    # localhost resolves to 127.0.0.1, which these settings do not allow
    url = f"https://localhost:{receiver.port}{_path('private')}"
    s = settings(urls=(url,), allow_networks=())
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 1})
    assert delivery.status == "queued"  # no name is resolved at emit
    wait_until(lambda: dead.get(delivery.id, s) is not None, what="dead letter")
    letter = dead.get(delivery.id, s)
    assert letter is not None
    assert letter.attempts == 1
    assert "loopback" in letter.reason


def _wait_all_delivered(
    receiver: Receiver, path: str, sent: list[shahihooks.Delivery], timeout: float
) -> None:
    wanted = {d.id for d in sent}
    wait_until(
        lambda: (
            {r.header("webhook-id") for r in receiver.requests_to(path) if r.status == 200}
            == wanted
        ),
        timeout=timeout,
        what=f"all {len(wanted)} delivered to {path}",
    )


def _ops_receiver(receiver: Receiver, path: str) -> list[dict[str, object]]:
    out = []
    for r in receiver.requests_to(path):
        expected = hmac.new(OPS_SECRET.encode(), r.body, hashlib.sha256).hexdigest()
        assert r.header("x-shahi-assist-signature") == f"sha256={expected}"
        out.append(json.loads(r.body))
    return out


def test_an_endpoint_that_only_fails_is_disabled_and_the_operators_are_told(
    settings, receiver: Receiver
) -> None:
    sick, ops = _path("sick"), _path("ops")
    receiver.rule(sick, lambda n: 503)
    s = settings(
        urls=(receiver.url(sick),),
        ops_urls=(receiver.url(ops),),
        ops_secret=OPS_SECRET,
        retry_schedule_s=(1, 1, 1),
        disable_after_s=6,
    )
    sent = [shahihooks.emit("ticket.created", {"ticket_id": i})[0] for i in range(4)]
    wait_until(
        lambda: "endpoint.disabled" in [e["event"] for e in _ops_receiver(receiver, ops)],
        timeout=30,
        what="endpoint.disabled at the ops URL",
    )
    told = [e["event"] for e in _ops_receiver(receiver, ops)]
    assert told.index("endpoint.failing") < told.index("endpoint.disabled")
    disabled = next(e for e in _ops_receiver(receiver, ops) if e["event"] == "endpoint.disabled")
    assert disabled["data"]["url"] == receiver.url(sick)  # type: ignore[index]
    seen = len(receiver.requests_to(sick))
    wait_until(
        lambda: all(dead.get(d.id, s) is not None for d in sent),
        timeout=15,
        what="every delivery dead-lettered",
    )
    more = shahihooks.emit("ticket.created", {"ticket_id": 99})
    assert [d.status for d in more] == ["dead"]
    time.sleep(2)
    assert len(receiver.requests_to(sick)) == seen
    listed = CliRunner().invoke(main, ["endpoints", "list"])
    assert "disabled since" in listed.output
    # never about the ops endpoint itself; the dead deliveries of the sick one are told once
    # each, before it was disabled
    assert all(
        e["data"]["url"] == receiver.url(sick)  # type: ignore[index]
        for e in _ops_receiver(receiver, ops)
    )


def test_a_storm_of_429_shrinks_the_limit_and_loses_nothing(settings, receiver: Receiver) -> None:
    path = _path("storm")
    busy = threading.Event()
    busy.set()
    receiver.rule(path, lambda n: (429, {"Retry-After": "1"}, b"") if busy.is_set() else 200)
    s = settings(
        urls=(receiver.url(path),),
        retry_schedule_s=(1, 1, 1, 1, 1, 1),
        circuit_cooldown_s=1,
        circuit_cooldown_max_s=2,
    )
    sent = [shahihooks.emit("ticket.created", {"ticket_id": i})[0] for i in range(8)]
    receiver.wait_for(path, 6)
    (storm,) = health.endpoint_health(s, [receiver.url(path)])
    assert storm.limit == 1
    assert storm.state in ("limited", "open")
    busy.clear()
    _wait_all_delivered(receiver, path, sent, timeout=40)
    assert dead.list_ids(s) == []


def test_a_flapping_endpoint_keeps_its_circuit_closed(settings, receiver: Receiver) -> None:
    path = _path("flap")
    receiver.rule(path, lambda n: 500 if n % 2 else 200)
    s = settings(urls=(receiver.url(path),), retry_schedule_s=(1, 1, 1))
    sent = [shahihooks.emit("ticket.created", {"ticket_id": i})[0] for i in range(6)]
    _wait_all_delivered(receiver, path, sent, timeout=30)
    (flap,) = health.endpoint_health(s, [receiver.url(path)])
    assert flap.state != "open"
    assert flap.open_until is None


def test_a_stored_endpoints_own_concurrency_is_its_ceiling(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    s = settings()
    url = receiver.url(_path("one"))
    EndpointStore(redis_client, s).add(Endpoint(url, concurrency=1))
    (h,) = health.endpoint_health(s, [url])
    assert h.ceiling == 1
    assert h.limit == 1
    with pytest.raises(shahihooks.ConfigurationError, match="concurrency 0"):
        EndpointStore(redis_client, s).add(Endpoint(url, concurrency=0))


def test_operational_settings_are_checked_at_load() -> None:
    with pytest.raises(shahihooks.ConfigurationError, match="SHAHIHOOKS_OPS_URLS"):
        shahihooks.Settings.from_env({"SHAHIHOOKS_OPS_URLS": "https://ops.example/hook"})
    with pytest.raises(shahihooks.ConfigurationError, match="SHAHIHOOKS_ENDPOINT_CONCURRENCY"):
        shahihooks.Settings.from_env({"SHAHIHOOKS_ENDPOINT_CONCURRENCY": "0"})
    with pytest.raises(shahihooks.ConfigurationError, match="SHAHIHOOKS_OPS_URLS"):
        shahihooks.Settings.from_env(
            {"SHAHIHOOKS_OPS_URLS": "http://ops.example/hook", "SHAHIHOOKS_SECRET": SECRET}
        )
    loaded = shahihooks.Settings.from_env({"SHAHIHOOKS_DISABLE_AFTER": "0"})
    assert loaded.disable_after_s == 0
    assert loaded.endpoint_concurrency == 50
    assert url_tag("https://a.example/") != url_tag("https://b.example/")
