"""The endpoint store's copies in a Redis Cluster, and how they are kept alike.

The store is copied into every shard (an emit reads the first shard that answers; a
delivery's begin reads its own shard's), written one shard after another: a write cut short
(a primary down, a process killed) leaves the copies different, and emits routed to
different shards would see different endpoints. So each copy carries a version, one more at
every write, written with it; `doctor` compares the copies' versions and digests, and a sync
writes the newest copy over every copy that differs from it (`shahihooks endpoints sync`,
and every write first when the versions differ), leaving, and naming, a copy that a write at
once with the sync reached after it was read.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from shahihooks.keys import Keys, url_tag

Place = tuple[redis.Redis, Keys]  # one copy's client and keys (its shard's)


@dataclass(frozen=True)
class Copy:
    """One shard's copy: its version (0: written before versions were kept) and entries."""

    shard: int
    version: int
    entries: dict[bytes, bytes]

    @property
    def digest(self) -> str:
        """The entries' SHA-256, in URL order (a hash's order is not the same on every
        node), each part length-prefixed so that no two different stores meet."""
        sha = hashlib.sha256()
        for url in sorted(self.entries):
            for part in (url, self.entries[url]):
                sha.update(b"%d:" % len(part) + part)
        return sha.hexdigest()[:12]

    def text(self) -> str:
        return f"shard {self.shard} (version {self.version}, {len(self.entries)} endpoint(s))"


def read(places: Sequence[Place]) -> list[Copy]:
    """Every copy, in shard order: one round trip per shard."""
    found = []
    for shard, (client, keys) in enumerate(places):
        pipe = client.pipeline(transaction=False)
        pipe.get(keys.endpoints_version)
        pipe.hgetall(keys.endpoints)
        version, entries = pipe.execute()
        found.append(Copy(shard, int(version or 0), entries))
    return found


def versions(places: Sequence[Place]) -> list[int]:
    """Every copy's version: what a write reads first (a GET per shard, not the copies)."""
    return [int(client.get(keys.endpoints_version) or 0) for client, keys in places]


def newest(copies: Sequence[Copy]) -> Copy:
    """The copy to keep: of the highest version (the last write reached it); of those, the
    entries most shards hold (two writers at once, an edit by hand); then the first shard."""
    top = max(c.version for c in copies)
    latest = [c for c in copies if c.version == top]
    held = Counter(c.digest for c in latest)
    return min(latest, key=lambda c: (-held[c.digest], c.shard))


def behind(copies: Sequence[Copy], best: Copy) -> list[Copy]:
    """The copies that differ from `best`, in their entries or their version."""
    return [c for c in copies if (c.version, c.digest) != (best.version, best.digest)]


@dataclass(frozen=True)
class Synced:
    """What a sync did: the newest copy; the copies it wrote it over (as they were read);
    the copies it left because a write reached them after they were read (a write at once
    with the sync: a sync again finds them as that write left them); and the URLs whose entry
    it changed in some copy."""

    best: Copy
    written: list[Copy]
    skipped: list[Copy]
    changed: frozenset[str]


def sync(places: Sequence[Place]) -> Synced:
    """Write the newest copy over every copy that differs from it, each in one transaction
    that a write to the copy since it was read cancels. A URL whose limit changed is looked
    at now, as a write does."""
    found = read(places)
    best = newest(found)
    written: list[Copy] = []
    skipped: list[Copy] = []
    changed: set[str] = set()
    for copy in behind(found, best):
        mine = {
            url.decode()
            for url in best.entries.keys() | copy.entries.keys()
            if best.entries.get(url) != copy.entries.get(url)
        }
        if _overwrite(places[copy.shard], copy, best, mine):
            written.append(copy)
            changed |= mine
        else:
            skipped.append(copy)
    return Synced(best, written, skipped, frozenset(changed))


def _overwrite(place: Place, copy: Copy, best: Copy, urls: set[str]) -> bool:
    """`best` written over `copy`, unless the copy was written since it was read (its
    version moved before the WATCH, or anything of it before the EXEC): False then."""
    client, keys = place
    with client.pipeline(transaction=True) as pipe:
        pipe.watch(keys.endpoints, keys.endpoints_version)  # type: ignore[no-untyped-call]
        if int(pipe.get(keys.endpoints_version) or 0) != copy.version:
            return False
        pipe.multi()
        pipe.delete(keys.endpoints)
        if best.entries:
            pipe.hset(keys.endpoints, mapping=best.entries)  # type: ignore[arg-type]
        pipe.set(keys.endpoints_version, best.version)
        for url in urls:
            pipe.zadd(keys.releases, {url_tag(url): 0}, xx=True, lt=True)
        try:
            pipe.execute()
        except redis.WatchError:
            return False
    return True
