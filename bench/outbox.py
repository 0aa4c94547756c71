"""What Django's transactional outbox costs per emit, against the same emit without it.

A private redis-server, Django on SQLite in a temporary folder, no worker (only the emit
side is measured). Each variant is one request's work, repeated N times, RUNS times; the
table shows the median time per request, and the outbox's extra cost per emit:

    plain                    shahihooks.emit(), no database
    commit                   a transaction that writes the app's one row, no event
    on_commit (before)       the same, and emit pushed on COMMIT (the old contrib.django.emit:
                             an outage at COMMIT lost the event)
    outbox                   the same through the outbox: INSERT with the row, push after
                             COMMIT, DELETE in the next request's transaction
    outbox, no transaction   contrib.django.emit in autocommit: pushed at once, no row

    python -m bench.outbox [--n 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789"
DATA = {"ticket_id": 123, "title": "Login issue", "status": "open"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(folder: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", folder],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def setup_django(folder: str, redis_url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["shahihooks.contrib.django"],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": f"{folder}/bench.db"}
        },
        USE_TZ=True,
        SHAHIHOOKS={
            "REDIS_URL": redis_url,
            "URLS": ["https://127.0.0.1:9/hook"],
            "SECRET": SECRET,
            "ALLOW_NETWORKS": "127.0.0.0/8",
            "RATE_LIMIT": 0,
            "QUEUE": "bench-outbox",
            "PREFIX": "bench-outbox",
        },
    )
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE app_rows (id INTEGER PRIMARY KEY, title TEXT)")


def variants() -> dict[str, Callable[[], None]]:
    from django.db import connection, transaction

    import shahihooks
    from shahihooks.contrib.django import emit as outbox_emit
    from shahihooks.emit import prepare

    def app_row() -> None:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO app_rows (title) VALUES (%s)", ["Login issue"])

    def plain() -> None:
        shahihooks.emit("ticket.created", DATA)

    def commit() -> None:
        with transaction.atomic():
            app_row()

    def on_commit() -> None:
        with transaction.atomic():
            app_row()
            transaction.on_commit(prepare("ticket.created", DATA).send)

    def outbox() -> None:
        with transaction.atomic():
            app_row()
            outbox_emit("ticket.created", DATA)

    def autocommit() -> None:
        outbox_emit("ticket.created", DATA)

    return {
        "plain": plain,
        "commit": commit,
        "on_commit (before)": on_commit,
        "outbox": outbox,
        "outbox, no transaction": autocommit,
    }


def per_call_us(func: Callable[[], None], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        func()
    return (time.perf_counter() - start) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="requests per variant and run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    sys.path.insert(0, str(ROOT))
    folder = tempfile.mkdtemp(prefix="shahihooks-bench-outbox-", dir=os.environ.get("BENCH_DIR"))
    server, url = start_redis(folder)
    try:
        setup_django(folder, url)
        from shahihooks.contrib.django.models import OutboxEvent

        funcs = variants()
        for func in funcs.values():
            per_call_us(func, 50)  # warm up: connections, scripts, caches
        results: dict[str, list[float]] = {name: [] for name in funcs}
        for _ in range(args.runs):
            for name, func in funcs.items():
                results[name].append(per_call_us(func, args.n))
        from shahihooks.contrib.django import outbox

        # the last request's row waits for the next emit's transaction (or a relay)
        assert OutboxEvent.objects.count() <= 1, "every other row was pushed and deleted"
        outbox.relay(everything=True)  # pushes it again: a duplicate, enqueued once
        assert not OutboxEvent.objects.exists()
    finally:
        server.terminate()
        server.wait()
    median = {name: statistics.median(times) for name, times in results.items()}
    print(f"{'variant':<26} {'µs per request':>15}   (median of {args.runs} × {args.n})")
    for name, value in median.items():
        spread = f"{min(results[name]):.0f}–{max(results[name]):.0f}"
        print(f"{name:<26} {value:>15.0f}   {spread}")
    extra = median["outbox"] - median["on_commit (before)"]
    print(
        f"\nthe outbox costs {extra:.0f} µs per emit in a transaction "
        f"({extra / median['on_commit (before)']:.0%} of the request above); "
        f"{median['outbox, no transaction'] - median['plain']:.0f} µs outside one"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
