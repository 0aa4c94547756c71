"""Every Redis key shahihooks uses, built here (and, with the same patterns, in lua/prelude.lua).

{p} is SHAHIHOOKS_PREFIX. In a Redis Cluster (SHAHIHOOKS_REDIS_CLUSTER) each of the 16 shards
has its own {p}, `{prefix}:{{tag}}` (shards.py): a hash tag that puts every key below in one
slot per shard; an endpoint's keys and its deliveries' are in its shard, and the endpoint
store, schema, epoch and signers in every shard (or the first).

{p}:body:{msg}          hash   one emitted event: event, ts, site, data, refs (deliveries of
                               it not yet finished, and its dead letters: they share it);
                               deleted when refs reaches 0, never expires while a delivery
                               or a dead letter needs it; a Cluster emit's step of no
                               delivery (shards.lead_shard) keeps only refs 0 and its
                               nonce, for the idempotency TTL
{p}:dlv:{dlv}           hash   one live delivery: message id, url tag, event, attempt, stage,
                               the fencing token of its live message, times; deleted when it
                               is delivered or dead-lettered
{p}:schedule            zset   every live delivery not in a backlog, scored by when it needs
                               attention (ms): a retry's due time, a sending attempt's lease
                               expiry, a queued message's check for loss
{p}:backlog:{tag}       zset   deliveries over their URL's rate limit, scored by emit order
{p}:releases            zset   url tag -> when its backlog may release more (ms)
{p}:rate:{tag}:{win}    string attempts admitted to a URL in one fixed window; two windows
{p}:urls                hash   url tag -> URL, and "{tag}:shown" -> the URL with credentials
                               masked (for logs written inside Lua)
{p}:retrying            hash   url tag -> deliveries waiting for a retry
{p}:seq                 string emit counter: the order of backlogs
{p}:watermark           zset   "ms" -> every message published before it has left the queue
{p}:watermark:history   zset   when (member, ms) the watermark passed each value (score);
                               the last few grace periods
{p}:done:{dlv}          string "ok" once delivered, "dead" once dead-lettered; idempotency TTL
{p}:emit:{key}          string the delivery list of an `emit(key=...)` ({key}: its SHA-256);
                               idempotency TTL. An emit stored in steps marks each step
                               after the first as {p}:emit:{key}#{step}
{p}:throttle:{ev}:{v}   string one `article.viewed` per article per window; the window. {v}
                               is the value's JSON (so 1 and "1" differ), hashed if long
{p}:endpoints           hash   url -> JSON endpoint (events, secrets, limit, enabled)
{p}:endpoints:version   string in a Redis Cluster, the version of the shard's copy of the
                               endpoint store: one more at every write (copies.py); never
                               expires
{p}:log                 stream every attempt and deferral, capped (MAXLEN ~ log_max_len)
{p}:stats:{hour}        hash   "url event field" -> ok, ms, deferrals and latency buckets
                               (attempts: the buckets' sum; data written before issue #23
                               has their count, n, too); stats retention (8 days)
{p}:totals              hash   the same fields as {p}:stats:{hour} but for ever: "url event
                               field" -> ok, ms and latency buckets since the start;
                               never expires (Prometheus counters, the dashboard)
{p}:dead                zset   dead delivery ids by time of death
{p}:dead:{dlv}          hash   one dead letter: its body's message id (one of the body's refs)
                               and how it died; kept until replayed or SHAHIHOOKS_DEAD_TTL
                               after its death (the mover's step expires it)
{p}:received:{dlv}      string a receiving app's record of a delivery it has handled
{p}:ep:{tag}            hash   one endpoint's health, shared by every worker: its adaptive
                               limit on attempts in flight, its circuit, when it started
                               failing, whether (and why) it is disabled; never expires
{p}:fly:{tag}           zset   the attempts in flight to one endpoint (and slots reserved by
                               its backlog's releases), scored by when they lapse (ms)
{p}:held:{tag}          zset   of those, the slots reserved by releases whose messages have not
                               begun: a delivery that begins first takes one (prelude.lua)
{p}:signers             hash   fingerprint of a secret the workers sign with -> when a worker
                               last said so (ms): doctor checks an app's against it
{p}:schema              string the state's schema version (schema.py): written by the first
                               worker on an empty state; checked by every worker as it starts
{p}:unknown             list   delivery messages this version could not read (an earlier
                               shape, a newer version) and whose delivery it could not find:
                               JSON of their arguments and why; the newest 10,000
{p}:ops                 hash   operational events not yet sent (endpoint.failing, ...):
                               id -> JSON; a worker sends each, then deletes it
{p}:epoch               string a random id and the run id of the Redis that made it, set by the
                               first worker; never expires: its going away means the state was
                               lost (a restart without persistence, FLUSHALL)
{p}:lost                hash   when the state was found lost, and why; 7 days, or until
                               `shahihooks doctor --ack-lost`
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shahihooks.payload import encode_data

_THROTTLE_VALUE_MAX = 100


URL_TAG_HEX = 32


def url_tag(url: str) -> str:
    """A stable tag of a URL, for key names and delivery ids: 128 bits of its SHA-256.

    `urls` maps tag -> URL, and a retry is sent to the URL of its tag: two URLs of one tag
    would receive each other's retries. At 48 bits a chosen collision with a known URL took
    hours on one GPU; at 128 bits it is out of reach.
    """
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:URL_TAG_HEX]


@dataclass(frozen=True)
class Keys:
    prefix: str = "shahihooks"

    def _key(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    def body(self, msg_id: str) -> str:
        return self._key("body", msg_id)

    def delivery(self, delivery_id: str) -> str:
        return self._key("dlv", delivery_id)

    def backlog(self, tag: str) -> str:
        return self._key("backlog", tag)

    def emitted(self, key: str, step: int = 0) -> str:
        """The marker of an `emit(key=...)`; of its `step` (after the first), for an emit
        stored in steps (state.py)."""
        marker = self._key("emit", hashlib.sha256(key.encode("utf-8")).hexdigest())
        return f"{marker}#{step}" if step else marker

    def throttle(self, event: str, value: object) -> str:
        """The throttle of `event` for one value of its field: `1` and `"1"` differ."""
        encoded = encode_data(value)
        if len(encoded) > _THROTTLE_VALUE_MAX:
            # no JSON text starts with "sha256:", so a hashed value never meets a plain one
            encoded = "sha256:" + hashlib.sha256(encoded.encode("utf-8")).hexdigest()
        return f"{self.prefix}:throttle:{event}:{encoded}"

    def stats(self, hour: int) -> str:
        return self._key("stats", hour)

    def dead(self, delivery_id: str) -> str:
        return self._key("dead", delivery_id)

    def received(self, delivery_id: str) -> str:
        return self._key("received", delivery_id)

    def health(self, tag: str) -> str:
        return self._key("ep", tag)

    def in_flight(self, tag: str) -> str:
        return self._key("fly", tag)

    @property
    def signers(self) -> str:
        return self._key("signers")

    @property
    def ops(self) -> str:
        return self._key("ops")

    @property
    def schema(self) -> str:
        return self._key("schema")

    @property
    def unknown(self) -> str:
        return self._key("unknown")

    @property
    def schedule(self) -> str:
        return self._key("schedule")

    @property
    def releases(self) -> str:
        return self._key("releases")

    @property
    def urls(self) -> str:
        return self._key("urls")

    @property
    def retrying(self) -> str:
        return self._key("retrying")

    @property
    def seq(self) -> str:
        return self._key("seq")

    @property
    def watermark(self) -> str:
        return self._key("watermark")

    @property
    def watermark_history(self) -> str:
        return self._key("watermark", "history")

    @property
    def endpoints(self) -> str:
        return self._key("endpoints")

    @property
    def endpoints_version(self) -> str:
        return self._key("endpoints", "version")

    @property
    def totals(self) -> str:
        return self._key("totals")

    @property
    def log(self) -> str:
        return self._key("log")

    @property
    def dead_index(self) -> str:
        return self._key("dead")

    @property
    def epoch(self) -> str:
        return self._key("epoch")

    @property
    def lost(self) -> str:
        return self._key("lost")
