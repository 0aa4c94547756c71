"""How long a `/metrics` scrape takes with 1,000 endpoints and 100,000 log entries.

    python -m bench.dashboard [--endpoints 1000] [--log 100000] [--scrapes 20]

Fills a private key prefix of a Redis (default db 15 of the local one; removed at the end)
as a busy deployment leaves it: the endpoint store, the never-expiring totals (3 events per
endpoint, a latency histogram each), 24 hourly stats hashes, the delivery log, retries,
backlogs, a schedule and dead letters; then scrapes a running dashboard's `/metrics` over
HTTP and prints the median and worst time, the size and the number of samples. The log's
length does not enter a scrape (it reads a bounded tail of 2,000 entries); the endpoint
label is capped at metrics.MAX_ENDPOINTS values.
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
import urllib.request
import uuid

import redis

from shahihooks.dashboard import serve
from shahihooks.endpoints import Endpoint
from shahihooks.keys import Keys, url_tag
from shahihooks.logline import LATENCY_BUCKETS_MS
from shahihooks.settings import Settings

EVENTS = ("ticket.created", "ticket.closed", "article.published")


def fill(client: redis.Redis, keys: Keys, endpoints: int, log: int) -> None:
    rng = random.Random(7)
    urls = [f"https://hooks{i}.example.com/webhook" for i in range(endpoints)]
    pipe = client.pipeline(transaction=False)
    now_h = int(time.time() // 3600)
    for i, url in enumerate(urls):
        tag = url_tag(url)
        pipe.hset(keys.endpoints, url, Endpoint(url).to_json())
        pipe.hset(keys.urls, mapping={tag: url, f"{tag}:shown": url})
        for event in EVENTS:
            n = rng.randint(1, 50_000)
            fields = {f"{url} {event} n": n, f"{url} {event} ok": n - n // 20}
            fields[f"{url} {event} ms"] = n * 80
            for upper in rng.sample(LATENCY_BUCKETS_MS, 6):
                fields[f"{url} {event} le{upper}"] = n // 6
            pipe.hset(keys.totals, mapping=fields)
            for hour in range(now_h - 23, now_h + 1):
                pipe.hset(keys.stats(hour), mapping={f"{url} {event} n": 10})
        if i % 5 == 0:
            pipe.hset(keys.retrying, tag, 3)
        if i % 10 == 0:
            pipe.zadd(keys.backlog(tag), {f"evt_{i}_{k}": k for k in range(20)})
            pipe.zadd(keys.releases, {tag: time.time() * 1000 + 60_000})
        if i % 50 == 0:
            pipe.execute()
    pipe.execute()
    ms = int(time.time() * 1000)
    for start in range(0, 10_000, 1000):
        client.zadd(keys.schedule, {f"evt_s{k}": ms - 5000 + k for k in range(start, start + 1000)})
    client.zadd(keys.dead_index, {f"evt_d{k}": time.time() for k in range(1000)})
    for start in range(0, log, 1000):
        for k in range(start, min(start + 1000, log)):
            url = urls[k % endpoints]
            pipe.xadd(
                keys.log,
                {
                    "ts": f"{time.time():.3f}",
                    "id": f"evt_{k}",
                    "url": url,
                    "event": EVENTS[k % 3],
                    "attempt": "1",
                    "outcome": "delivered" if k % 7 else "retry",
                    "status": "200" if k % 7 else "500",
                    "ms": "80",
                    "error": "" if k % 7 else "HTTP 500",
                    "next_s": "",
                },
                maxlen=log + 1000,
                approximate=True,
            )
        pipe.execute()


def scrape(base: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(base + "/metrics", timeout=120) as response:
        body: bytes = response.read()
    return time.perf_counter() - start, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--log", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    prefix = f"benchdash{uuid.uuid4().hex[:8]}"
    settings = Settings(redis_url=args.redis_url, prefix=prefix, log_max_len=args.log + 1000)
    client = redis.Redis.from_url(args.redis_url)
    keys = Keys(prefix)
    try:
        started = time.perf_counter()
        fill(client, keys, args.endpoints, args.log)
        print(
            f"filled {prefix}: {args.endpoints} endpoints, {client.xlen(keys.log)} log entries, "
            f"{client.hlen(keys.totals)} totals fields in {time.perf_counter() - started:.1f} s"
        )
        server = serve(settings, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        scrape(base)  # warm
        times, body = [], b""
        for _ in range(args.scrapes):
            took, body = scrape(base)
            times.append(took)
        server.shutdown()
        samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        print(
            f"/metrics scrape: median {statistics.median(times) * 1000:.0f} ms, "
            f"worst {max(times) * 1000:.0f} ms over {args.scrapes} scrapes; "
            f"{len(body) / 1024:.0f} KiB, {samples} samples"
        )
    finally:
        names = list(client.scan_iter(match=prefix + ":*", count=5000))
        for i in range(0, len(names), 1000):
            client.delete(*names[i : i + 1000])


if __name__ == "__main__":
    main()
