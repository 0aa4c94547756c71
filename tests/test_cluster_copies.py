"""The endpoint store's copies in a Redis Cluster (one per shard, copies.py): a write cut
short, or a copy edited by hand, is reported by `shahihooks doctor` naming the shard and the
repair; `shahihooks endpoints sync` (and the next write) makes every copy the newest again.
A real cluster (tests/cluster.py); the copies are made to differ directly in Redis. The
choice of the newest copy is tested as a pure function."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

import pytest
import redis
from click.testing import CliRunner

import shahihooks
from shahihooks import copies, shards
from shahihooks.cli import main
from shahihooks.endpoints import Endpoint, EndpointStore
from shahihooks.settings import Settings, current
from tests.cluster import (
    ROOT,
    cluster_fixture,  # noqa: F401 (the fixture `cluster`, one per module)
    settings_of,
    world_fixture,  # noqa: F401 (the fixture `world`)
)
from tests.faults import World
from tests.receiver import Receiver

CHECK = "endpoint store's"


def cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shahihooks", *args],
        env=world.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copies_line(world: World) -> dict[str, Any]:
    """Doctor's line about the copies, from its --json."""
    done = cli(world, "doctor", "--no-worker-check", "--json")
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    (line,) = [c for c in json.loads(done.stdout) if CHECK in c["what"]]
    return line  # type: ignore[no-any-return]


def stored(settings: Settings) -> list[tuple[bytes | None, dict[bytes, bytes]]]:
    """Every shard's copy, as it is in Redis: its version and its hash."""
    return [
        (s.client.get(s.keys.endpoints_version), s.client.hgetall(s.keys.endpoints))
        for s in shards.shards(settings)
    ]


def test_a_copy_left_behind_is_reported_by_doctor_and_synced(
    world: World, receiver: Receiver
) -> None:
    settings = settings_of(world)
    store = EndpointStore(shards.shards(settings)[0].client, settings)
    urls = [receiver.url(f"/copies-{uuid.uuid4().hex[:6]}-{n}") for n in range(3)]
    for url in urls:
        store.add(Endpoint(url, description=url[-8:]))
    written = stored(settings)
    assert len(written) == 16
    assert all(copy == (b"3", written[0][1]) for copy in written), written
    assert set(written[0][1]) == {u.encode() for u in urls}
    line = copies_line(world)
    assert line["ok"], line
    assert "16 copies" in line["what"]
    assert "version 3, 3 endpoint(s)" in line["what"]

    # the third add cut short before shard 7: its copy has the second write's version and
    # lacks the third URL (what a primary down or a process killed midway leaves)
    behind = shards.shards(settings)[7]
    behind.client.hdel(behind.keys.endpoints, urls[2])
    behind.client.set(behind.keys.endpoints_version, 2)
    line = copies_line(world)
    assert not line["ok"], line
    assert "shard 7 (version 2, 2 endpoint(s))" in line["what"], line
    assert "shard 0 (version 3, 3 endpoint(s))" in line["what"], line
    assert "shard 1 " not in line["what"], line
    assert line["fix"].startswith("shahihooks endpoints sync"), line

    done = cli(world, "endpoints", "sync")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "shard(s) 7 given the newest copy, " + (
        "shard 0 (version 3, 3 endpoint(s))"
    )
    assert stored(settings) == written
    assert copies_line(world)["ok"]
    again = cli(world, "endpoints", "sync")
    assert "nothing to do" in again.stdout, again.stdout


def test_a_copy_edited_by_hand_is_reported_and_the_majority_kept(
    world: World, receiver: Receiver
) -> None:
    settings = settings_of(world)
    store = EndpointStore(shards.shards(settings)[0].client, settings)
    url = receiver.url(f"/copies-hand-{uuid.uuid4().hex[:6]}")
    store.add(Endpoint(url))
    written = stored(settings)
    edited = shards.shards(settings)[12]
    edited.client.hset(edited.keys.endpoints, "https://stray.example/x", Endpoint("x").to_json())
    line = copies_line(world)
    assert not line["ok"], line
    assert "shard 12 (version 1, 2 endpoint(s))" in line["what"], line
    assert "shard 0 (version 1, 1 endpoint(s))" in line["what"], line
    assert "sync (writes shard 0's copy" in line["fix"], line
    synced = store.sync()
    assert (synced.best.shard, [c.shard for c in synced.written]) == (0, [12])
    assert synced.skipped == []
    assert stored(settings) == written


def test_the_next_write_brings_copies_left_behind_up_first(
    world: World, receiver: Receiver
) -> None:
    settings = settings_of(world)
    store = EndpointStore(shards.shards(settings)[0].client, settings)
    first, second = (receiver.url(f"/copies-next-{uuid.uuid4().hex[:6]}-{n}") for n in range(2))
    store.add(Endpoint(first))
    behind = shards.shards(settings)[15]
    behind.client.delete(behind.keys.endpoints, behind.keys.endpoints_version)
    store.add(Endpoint(second))
    found = stored(settings)
    assert {version for version, _ in found} == {b"2"}
    assert all(entries == found[0][1] for _, entries in found)
    assert set(found[15][1]) == {first.encode(), second.encode()}
    assert copies_line(world)["ok"]


def test_sync_names_apart_the_shards_a_write_reached_while_it_ran(
    world: World, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shards 7 and 9 left behind; another write reaches shard 9 after the sync read the
    copies: sync overwrites 7 only, says 9 changed meanwhile, exits 1; a sync again ends it."""
    settings = settings_of(world)
    store = EndpointStore(shards.shards(settings)[0].client, settings)
    urls = [receiver.url(f"/copies-meanwhile-{uuid.uuid4().hex[:6]}-{n}") for n in range(4)]
    for url in urls[:3]:
        store.add(Endpoint(url))
    written = stored(settings)
    for shard in (7, 9):
        behind = shards.shards(settings)[shard]
        behind.client.hdel(behind.keys.endpoints, urls[2])
        behind.client.set(behind.keys.endpoints_version, 2)
    read = copies.read

    def read_then_a_write(places):  # type: ignore[no-untyped-def]
        found = read(places)
        client, keys = places[9]  # the other write: version 4, adding urls[3], shard 9 first
        client.hset(keys.endpoints, urls[3], Endpoint(urls[3]).to_json())
        client.set(keys.endpoints_version, 4)
        return found

    monkeypatch.setattr(copies, "read", read_then_a_write)
    previous = current()
    shahihooks.configure(settings)
    try:
        done = CliRunner().invoke(main, ["endpoints", "sync"])
        monkeypatch.undo()
        assert done.exit_code == 1, done.output
        newest = "shard 0 (version 3, 3 endpoint(s))"
        assert done.stdout.strip() == f"shard(s) 7 given the newest copy, {newest}"
        assert done.stderr.strip() == (
            "Error: shard(s) 9 changed while syncing (another write to the store at the same "
            "time): not overwritten; run `shahihooks endpoints sync` again"
        )
        after = stored(settings)
        assert after[7] == written[7]
        assert after[9][0] == b"4"  # as the other write left it
        assert set(after[9][1]) == {urls[0].encode(), urls[1].encode(), urls[3].encode()}
        again = CliRunner().invoke(main, ["endpoints", "sync"])
        assert again.exit_code == 0, again.output
        assert "given the newest copy, shard 9 (version 4, 3 endpoint(s))" in again.stdout
        assert all(copy == after[9] for copy in stored(settings))
    finally:
        shahihooks.configure(previous)


def test_a_sync_leaves_a_copy_written_between_its_watch_and_its_exec(redis_client) -> None:  # type: ignore[no-untyped-def]
    """The write reaches shard 2 after the sync checked its version, before its transaction
    ran (a client whose transactions meet another connection's write after their WATCH):
    the transaction is cancelled, and the copy is named as skipped, not as written."""
    from shahihooks.keys import Keys

    run = uuid.uuid4().hex[:8]
    keys = [Keys(f"shtestcopies{run}-{i}") for i in range(3)]

    class WrittenMeanwhile(redis.Redis):
        def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
            pipe = super().pipeline(transaction, shard_hint)
            multi = pipe.multi

            def a_write_then_multi() -> None:
                other = redis.Redis(connection_pool=self.connection_pool)
                other.hset(keys[2].endpoints, "c", "1")
                other.set(keys[2].endpoints_version, 3)
                multi()

            pipe.multi = a_write_then_multi  # type: ignore[method-assign]
            return pipe

    meanwhile = WrittenMeanwhile(connection_pool=redis_client.connection_pool)
    places = [(redis_client, keys[0]), (redis_client, keys[1]), (meanwhile, keys[2])]
    for (client, mine), (version, entries) in zip(
        places, [(2, {"a": "1", "b": "1"}), (1, {"a": "1"}), (1, {"a": "1"})], strict=True
    ):
        client.hset(mine.endpoints, mapping=entries)
        client.set(mine.endpoints_version, version)
    try:
        synced = copies.sync(places)
        assert ([c.shard for c in synced.written], [c.shard for c in synced.skipped]) == ([1], [2])
        after = copies.read(places)
        assert [c.version for c in after] == [2, 2, 3]
        assert after[2].entries == {b"a": b"1", b"c": b"1"}  # the other write's, not the sync's
    finally:
        for mine in keys:
            redis_client.delete(mine.endpoints, mine.endpoints_version)


def copy(shard: int, version: int, **entries: str) -> copies.Copy:
    return copies.Copy(shard, version, {k.encode(): v.encode() for k, v in entries.items()})


def test_the_newest_copy_is_of_the_highest_version_then_the_most_held() -> None:
    found = [copy(0, 3, a="1"), copy(1, 4, a="2"), copy(2, 4, a="3"), copy(3, 4, a="3")]
    assert copies.newest(found).shard == 2
    assert [c.shard for c in copies.behind(found, copies.newest(found))] == [0, 1]
    tie = [copy(0, 1, a="1"), copy(1, 1, a="2")]
    assert copies.newest(tie).shard == 0
    # the digest is the same whatever the hash's order, and length-prefixed parts never meet
    assert copy(0, 1, a="1", b="2").digest == copy(1, 1, b="2", a="1").digest
    assert copy(0, 1, ab="1").digest != copy(0, 1, a="b1").digest
    assert [c.shard for c in copies.behind(tie, tie[0])] == [1]


def test_a_sync_leaves_a_copy_written_since_it_read_them(redis_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Three copies under prefixes of their own on one Redis (the copies' code takes any
    clients): a write reaches shard 2 after the sync read every copy, before it writes."""
    from shahihooks.keys import Keys

    run = uuid.uuid4().hex[:8]
    places = [(redis_client, Keys(f"shtestcopies{run}-{i}")) for i in range(3)]
    stored = [(2, {"a": "1", "b": "1"}), (1, {"a": "1"}), (1, {"a": "1"})]
    for (client, keys), (version, entries) in zip(places, stored, strict=True):
        client.hset(keys.endpoints, mapping=entries)
        client.set(keys.endpoints_version, version)
    read = copies.read

    def read_then_a_write(found_in):  # type: ignore[no-untyped-def]
        found = read(found_in)
        client, keys = places[2]
        client.hset(keys.endpoints, "c", "1")  # a write at once: version 3 in shard 2
        client.set(keys.endpoints_version, 3)
        return found

    monkeypatch.setattr(copies, "read", read_then_a_write)
    try:
        synced = copies.sync(places)
        assert ([c.shard for c in synced.written], [c.shard for c in synced.skipped]) == ([1], [2])
        after = read(places)
        assert [c.version for c in after] == [2, 2, 3]
        assert after[1].entries == {b"a": b"1", b"b": b"1"}  # brought to the newest read
        assert after[2].entries == {b"a": b"1", b"c": b"1"}  # the later write, kept
    finally:
        for client, keys in places:
            client.delete(keys.endpoints, keys.endpoints_version)
