"""Which secrets the running workers sign with, by fingerprint (signing.fingerprint).

Every delivery carries the fingerprint of the secret its app signs with, and a worker never
signs a delivery whose secret it does not have (delivery.refusal: it is dead-lettered with the
reason, replayable). So that an app learns of that before its deliveries die, each worker
writes its fingerprints here every few seconds (`{p}:signers`: fingerprint -> when, ms), and
`doctor` says when no worker alive signs with the app's own secret (two Flask apps with
different secrets sharing one worker, a worker started without the app's settings).
"""

from __future__ import annotations

from shahihooks import shards
from shahihooks.settings import Settings
from shahihooks.signing import fingerprint

ALIVE_S = 60  # a worker that wrote within this long counts as running


def fingerprints(settings: Settings) -> set[str]:
    """The fingerprints of every secret these settings sign with (rotation included)."""
    found = {fingerprint(s) for s in settings.secrets}
    if settings.ops_secret:
        found.add(fingerprint(settings.ops_secret))
    return found


def register(settings: Settings) -> None:
    """This worker signs with these settings' secrets (called every few seconds)."""
    state = shards.shards(settings)[0]  # the first shard holds settings-wide records
    now_ms = state.now_ms()
    key = state.keys.signers
    pipe = state.client.pipeline(transaction=False)
    for fp in fingerprints(settings):
        pipe.hset(key, fp, now_ms)
    pipe.execute()


def alive(settings: Settings) -> set[str]:
    """The fingerprints some worker signed with in the last ALIVE_S seconds."""
    state = shards.shards(settings)[0]
    since = state.now_ms() - ALIVE_S * 1000
    raw = state.client.hgetall(state.keys.signers)
    return {_text(fp) for fp, at in raw.items() if int(at) >= since}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
