"""Across upgrades nothing is dropped silently: a message of an earlier shape (or another
version) dead-letters its delivery or is kept in `{p}:unknown`; a state written by an
incompatible version makes the worker refuse to start, naming the key."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
import redis

import shahihooks
from shahihooks import doctor
from shahihooks.app import app
from shahihooks.errors import IncompatibleState
from shahihooks.keys import Keys
from shahihooks.publish import TASK_NAME
from shahihooks.schema import (
    MESSAGE_SCHEMA,
    STATE_SCHEMA,
    judge_version,
    key_types,
    message_args,
    wrong_types,
)
from shahihooks.worker import check_worker
from tests.conftest import REDIS_URL, RUN, SECRET, clean_env, wait_until
from tests.receiver import Receiver


def test_message_args_reads_this_shape_and_names_any_other() -> None:
    assert message_args(("evt_1-ab", 3), {"v": MESSAGE_SCHEMA}) == ("evt_1-ab", 3)
    assert message_args(("evt_1-ab", 3), {}) == ("evt_1-ab", 3), "before v: the same shape"
    old = message_args(("evt_1-ab", "https://x.example/h", "ticket.created", 2), {})
    assert isinstance(old, str)
    assert "deliver(4 arguments)" in old
    assert "newer" in str(message_args(("evt_1-ab", 3), {"v": MESSAGE_SCHEMA + 1}))
    assert isinstance(message_args(("evt_1-ab", 3), {"url": "x"}), str)
    assert isinstance(message_args((7, 3), {}), str)
    assert isinstance(message_args(("evt_1-ab", None), {}), str)


def test_the_state_version_is_written_checked_and_refused_when_newer_or_older() -> None:
    assert judge_version(None) == STATE_SCHEMA
    assert judge_version(str(STATE_SCHEMA)) is None
    with pytest.raises(IncompatibleState, match="newer shahihooks"):
        judge_version(str(STATE_SCHEMA + 1))
    with pytest.raises(IncompatibleState, match="not a number"):
        judge_version("two")
    keys = Keys("p")
    wrong = wrong_types({keys.watermark: "string", keys.log: "none"}, key_types(keys))
    assert wrong == ["p:watermark is a string (this version keeps a zset there)"]


def test_an_empty_state_gets_the_current_version(settings, redis_client: redis.Redis) -> None:
    s = settings(prefix=f"shtest{RUN}:fresh{uuid.uuid4().hex[:6]}")
    check_worker(s)
    assert redis_client.get(Keys(s.prefix).schema) == str(STATE_SCHEMA).encode()
    check_worker(s)  # and a second worker starts on it


def test_a_state_key_of_another_type_makes_the_worker_refuse_to_start(
    settings, redis_client: redis.Redis
) -> None:
    prefix = f"shtest{RUN}:old{uuid.uuid4().hex[:6]}"
    s = settings(prefix=prefix)
    redis_client.set(Keys(prefix).watermark, "1700000000000")  # an earlier version's string
    with pytest.raises(IncompatibleState, match=rf"{prefix}:watermark is a string .*zset"):
        check_worker(s)
    (check,) = [c for c in doctor.run(s, ping_workers=False) if "watermark is a" in c.what]
    assert check.ok is False
    env = clean_env(
        SHAHIHOOKS_REDIS_URL=REDIS_URL, SHAHIHOOKS_PREFIX=prefix, SHAHIHOOKS_SECRET=SECRET
    )
    proc = subprocess.run(
        [sys.executable, "-m", "shahihooks", "worker", "--loglevel", "WARNING"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert f"{prefix}:watermark is a string" in out
    assert "incompatible version" in out
    assert "Traceback" not in out


def test_a_newer_state_version_makes_the_worker_refuse(settings, redis_client: redis.Redis) -> None:
    s = settings(prefix=f"shtest{RUN}:new{uuid.uuid4().hex[:6]}")
    redis_client.set(Keys(s.prefix).schema, STATE_SCHEMA + 1)
    with pytest.raises(IncompatibleState, match="upgrade this worker"):
        check_worker(s)


@pytest.mark.usefixtures("worker")
def test_messages_of_the_old_four_argument_shape_are_never_dropped_silently(
    settings, receiver: Receiver, redis_client: redis.Redis
) -> None:
    # its own message goes to a queue no worker reads: the old-shape one is all there is
    s = settings(urls=(receiver.url("/upgraded"),), queue=f"nobody-{uuid.uuid4().hex[:6]}")
    (queued,) = shahihooks.emit("ticket.created", {"ticket_id": 1})
    keys = Keys(s.prefix)
    unknown_id = f"evt_{uuid.uuid4().hex}-0123456789ab"
    for delivery_id in (queued.id, unknown_id):
        old = (delivery_id, receiver.url("/upgraded"), "ticket.created", 1)
        app.send_task(TASK_NAME, old, queue=f"shtest{RUN}")
    app.send_task(TASK_NAME, (unknown_id, 1), {"v": MESSAGE_SCHEMA + 1}, queue=f"shtest{RUN}")

    wait_until(lambda: redis_client.exists(keys.dead(queued.id)), what="its dead letter")
    reason = (redis_client.hget(keys.dead(queued.id), "reason") or b"").decode()
    assert "earlier shape" in reason
    assert "deliver(4 arguments)" in reason
    wait_until(lambda: redis_client.llen(keys.unknown) == 2, what="kept in {p}:unknown")
    kept = [json.loads(raw) for raw in redis_client.lrange(keys.unknown, 0, -1)]
    assert [k["args"][0] for k in kept] == [unknown_id, unknown_id]
    assert any(len(k["args"]) == 4 and "earlier shape" in k["reason"] for k in kept)
    assert any(k["kwargs"] == {"v": MESSAGE_SCHEMA + 1} and "newer" in k["reason"] for k in kept)
    assert receiver.requests_to("/upgraded") == []
    (check,) = [c for c in doctor.run(s, ping_workers=False) if keys.unknown in c.what]
    assert check.ok is False
    assert check.what.startswith("2 delivery message(s)")
