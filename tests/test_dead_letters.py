"""Dead letters share their event's stored body (one large event dead at several URLs is
stored once), expire after SHAHIHOOKS_DEAD_TTL with their body reference, replay the exact
bytes, and keep at most a bounded part of what a receiver said."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis
from click.testing import CliRunner

import shahihooks
from shahihooks import dead
from shahihooks.cli import main
from shahihooks.keys import Keys, url_tag
from shahihooks.outcome import RECEIVER_TEXT_MAX, reason_for
from shahihooks.payload import envelope
from tests.conftest import ScriptKeys, wait_until
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("worker")

URLS = 5
LARGE = 900_000


def paths(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"/gone-{i}-{tag}" for i in range(n)]


def memory(client: redis.Redis, key: str) -> int:
    return int(client.memory_usage(key, samples=0) or 0)  # type: ignore[arg-type]


def all_dead(client: redis.Redis, keys: Keys, ids: list[str]) -> bool:
    return all(client.exists(keys.dead(i)) for i in ids)


def test_one_large_event_dead_at_several_urls_is_stored_once_and_replays_exact_bytes(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    gone = paths(URLS)
    s = settings(urls=tuple(receiver.url(p) for p in gone), retry_schedule_s=())
    for path in gone:
        receiver.rule(path, lambda n: 500)
    deliveries = shahihooks.emit("ticket.created", {"ticket_id": 1, "text": "x" * LARGE})
    ids = [d.id for d in deliveries]
    keys = ScriptKeys(s.prefix)
    wait_until(lambda: all_dead(redis_client, keys, ids), what="every delivery dead-lettered")
    sent = {r.path: r.body for r in receiver.received if r.path in gone}
    assert len(sent) == URLS
    assert all(len(b) > LARGE for b in sent.values())

    msg = (redis_client.hget(keys.dead(ids[0]), "msg") or b"").decode()
    body_bytes = memory(redis_client, keys.body(msg))
    letters_bytes = sum(memory(redis_client, keys.dead(i)) for i in ids)
    assert letters_bytes < 20_000, f"{URLS} dead letters take {letters_bytes} bytes: copies?"
    assert body_bytes > LARGE
    assert redis_client.hget(keys.body(msg), "refs") == str(URLS).encode()

    # `dead show` gives the exact bytes sent, rebuilt from the shared body
    first = gone[0]
    (first_id,) = [i for i, d in zip(ids, deliveries, strict=True) if d.url.endswith(first)]
    shown = CliRunner().invoke(main, ["dead", "show", first_id, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["body"].encode() == sent[first]

    # replayed, it delivers the exact bytes; the body stays for the other four letters
    receiver.rule(first, lambda n: 200)
    assert dead.replay(first_id, s) is True
    wait_until(lambda: redis_client.get(keys.done(first_id)) == b"ok", what="replay delivered")
    (ok,) = [r for r in receiver.requests_to(first) if r.status == 200]
    assert ok.body == sent[first]
    assert redis_client.hget(keys.body(msg), "refs") == str(URLS - 1).encode()
    assert all(dead.get(i, s) is not None for i in ids if i != first_id)


def test_dead_letters_expire_after_the_dead_ttl_and_free_their_body(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    gone = paths(2)
    s = settings(urls=tuple(receiver.url(p) for p in gone), retry_schedule_s=(), dead_ttl_s=3)
    for path in gone:
        receiver.rule(path, lambda n: 500)
    ids = [d.id for d in shahihooks.emit("ticket.created", {"ticket_id": 2})]
    keys = ScriptKeys(s.prefix)
    wait_until(lambda: all_dead(redis_client, keys, ids), what="both dead-lettered")
    msg = (redis_client.hget(keys.dead(ids[0]), "msg") or b"").decode()

    listed = CliRunner().invoke(main, ["dead", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows: list[dict[str, Any]] = json.loads(listed.output)
    assert {r["id"] for r in rows} == set(ids)
    assert all(r["expires_at"] == pytest.approx(r["died_at"] + 3) for r in rows)
    assert "EXPIRES" in CliRunner().invoke(main, ["dead", "list"]).output
    assert redis_client.exists(keys.body(msg))

    def gone_for_good() -> bool:
        return not any(redis_client.exists(keys.dead(i)) for i in ids) and not (
            redis_client.exists(keys.body(msg)) or redis_client.zcard(keys.dead_index)
        )

    wait_until(gone_for_good, timeout=30, what="dead letters and their body expired")


def test_a_60_kb_location_is_cut_before_the_log_and_the_dead_letter(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    (path,) = paths(1)
    s = settings(urls=(receiver.url(path),), retry_schedule_s=())
    far = receiver.url("/elsewhere?" + "a" * 60_000)
    receiver.rule(path, lambda n: (302, {"Location": far}, b""))
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 3})
    keys = ScriptKeys(s.prefix)
    wait_until(lambda: redis_client.exists(keys.dead(delivery.id)), what="dead letter")
    reason = redis_client.hget(keys.dead(delivery.id), "reason") or b""
    assert b"redirect to https://127.0.0.1" in reason
    assert len(reason) < 1200
    assert memory(redis_client, keys.dead(delivery.id)) < 5_000
    entries = [e for _, e in redis_client.xrange(keys.log) if e[b"id"] == delivery.id.encode()]
    assert entries
    assert all(len(e[b"error"]) < 1200 for e in entries)


def test_reason_for_cuts_what_a_receiver_chose() -> None:
    reason = reason_for(301, None, "https://x.example/" + "a" * 60_000)
    assert len(reason) < RECEIVER_TEXT_MAX + 200
    assert "more characters cut" in reason
    assert reason_for(301, None, "https://x.example/ok") == (
        "HTTP 301 redirect to https://x.example/ok (redirects are not followed)"
    )


def test_a_dead_letter_of_the_earlier_version_with_its_own_copy_shows_and_replays_its_bytes(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    path = f"/legacy-{uuid.uuid4().hex[:8]}"
    url = receiver.url(path)
    s = settings(urls=(url,))
    keys = ScriptKeys(s.prefix)
    tag = url_tag(url)
    delivery_id = f"evt_{uuid.uuid4().hex}-{tag}"
    data = '{"ticket_id":9,"title":"caf\u00e9"}'
    # written as the earlier dead_letter did: the body's parts copied into the letter
    redis_client.hset(keys.urls, mapping={tag: url, f"{tag}:shown": url})
    redis_client.hset(
        keys.dead(delivery_id),
        mapping={
            "id": delivery_id, "msg": "evt_legacy", "url": url, "tag": tag,
            "event": "ticket.created", "attempts": "4", "reason": "HTTP 500", "status": "500",
            "died_at": "1700000000.000", "ts": "1700000000", "site": "", "data": data,
            "has_body": "1", "response": "", "src": "urls", "o": "1", "off": "",
        },
    )  # fmt: skip
    redis_client.zadd(keys.dead_index, {delivery_id: 1700000000})
    expected = envelope(delivery_id, "ticket.created", 1700000000, "", data)
    letter = dead.get(delivery_id, s)
    assert letter is not None
    assert letter.body == expected
    assert dead.replay(delivery_id, s) is True
    (got,) = receiver.wait_for(path, 1)
    assert got.body == expected
    wait_until(lambda: redis_client.get(keys.done(delivery_id)) == b"ok", what="delivered")
    assert not redis_client.exists(keys.body("evt_legacy"))
