"""Make sure a Redis answers at SHAHIHOOKS_REDIS_URL (default 127.0.0.1:6379).

If none answers and the URL points at this machine, start `redis-server` on that port
(no persistence, daemonised). Exit 1 with a clear message when neither is possible.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit

import redis

URL = os.environ.get("SHAHIHOOKS_REDIS_URL", "redis://127.0.0.1:6379/0")


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def main() -> int:
    if answers(URL):
        return 0
    parts = urlsplit(URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"Redis at {URL} does not answer, and it is not on this machine.", file=sys.stderr)
        return 1
    server = shutil.which("redis-server")
    if server is None:
        print(
            f"No Redis answers at {URL} and redis-server is not installed: "
            "install it (apt-get install redis-server) or set SHAHIHOOKS_REDIS_URL.",
            file=sys.stderr,
        )
        return 1
    workdir = tempfile.mkdtemp(prefix="shahihooks-redis-")
    subprocess.run(
        [
            server,
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--logfile",
            os.path.join(workdir, "redis.log"),
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if answers(URL):
            print(f"started redis-server on 127.0.0.1:{port} (data in {workdir})")
            return 0
        time.sleep(0.1)
    print(f"started redis-server on port {port}, but it does not answer", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
