"""Every Redis key shahihooks uses, built here and nowhere else, under one prefix.

{p}:body:{msg}          hash   one emitted event: event, ts, site, data, refs (deliveries
                               still pending); deleted when refs reaches 0, else expires
                               after the idempotency TTL
{p}:done:{dlv}          string "ok" once delivered, else the last finished attempt
                               number; lives for the idempotency TTL
{p}:lease:{dlv}         string the in-flight lease of one attempt; lives timeout + margin
{p}:emit:{key}          string the delivery list of an `emit(key=...)`; idempotency TTL
{p}:throttle:{ev}:{v}   string one `article.viewed` per article per window; the window. {v}
                               is the value's JSON (so 1 and "1" differ), hashed if long
{p}:rate:{url}:{win}    string attempts to a URL in one fixed window; two windows
{p}:endpoints           hash   url -> JSON endpoint (events, secrets, limit, enabled)
{p}:log                 stream every attempt, capped (MAXLEN ~ log_max_len)
{p}:stats:{hour}        hash   "url|event|field" -> count, ok, ms, and latency buckets;
                               stats retention (8 days)
{p}:dead                zset   dead delivery ids by time of death
{p}:dead:{dlv}          hash   one dead letter: the full body and how it died; kept until
                               replayed or purged
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shahihooks.payload import encode_data

_THROTTLE_VALUE_MAX = 100


def url_tag(url: str) -> str:
    """A short stable tag of a URL, for key names and delivery ids."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Keys:
    prefix: str = "shahihooks"

    def body(self, msg_id: str) -> str:
        return f"{self.prefix}:body:{msg_id}"

    def done(self, delivery_id: str) -> str:
        return f"{self.prefix}:done:{delivery_id}"

    def lease(self, delivery_id: str) -> str:
        return f"{self.prefix}:lease:{delivery_id}"

    def emitted(self, key: str) -> str:
        return f"{self.prefix}:emit:{hashlib.sha256(key.encode('utf-8')).hexdigest()}"

    def throttle(self, event: str, value: object) -> str:
        """The throttle of `event` for one value of its field: `1` and `"1"` differ."""
        encoded = encode_data(value)
        if len(encoded) > _THROTTLE_VALUE_MAX:
            # no JSON text starts with "sha256:", so a hashed value never meets a plain one
            encoded = "sha256:" + hashlib.sha256(encoded.encode("utf-8")).hexdigest()
        return f"{self.prefix}:throttle:{event}:{encoded}"

    def rate(self, url: str, window: int) -> str:
        return f"{self.prefix}:rate:{url_tag(url)}:{window}"

    @property
    def endpoints(self) -> str:
        return f"{self.prefix}:endpoints"

    @property
    def log(self) -> str:
        return f"{self.prefix}:log"

    def stats(self, hour: int) -> str:
        return f"{self.prefix}:stats:{hour}"

    @property
    def pending(self) -> str:
        return f"{self.prefix}:pending"

    @property
    def pending_at(self) -> str:
        return f"{self.prefix}:pending_at"

    @property
    def sweep_lock(self) -> str:
        return f"{self.prefix}:sweep"

    def received(self, delivery_id: str) -> str:
        return f"{self.prefix}:received:{delivery_id}"

    @property
    def dead_index(self) -> str:
        return f"{self.prefix}:dead"

    def dead(self, delivery_id: str) -> str:
        return f"{self.prefix}:dead:{delivery_id}"
