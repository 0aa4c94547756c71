"""Real PHP for the tests: the page's receivers under `php -S`, and PHP's own re-encoding.

`make test` installs Debian's php-cli when `php` is missing (scripts/ensure_tools.sh).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import connects, free_port

PHP_DIR = Path(__file__).resolve().parent / "php"


def php_binary() -> str:
    found = shutil.which("php")
    if found is None:
        pytest.fail("php is not installed: `make test` installs it (apt-get install php-cli)")
    return found


class Reencoder:
    """One long-lived `php` process: body in, `json_encode(json_decode($body, true))` out."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [php_binary(), str(PHP_DIR / "reencode.php")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.lock = threading.Lock()

    def __call__(self, body: bytes) -> bytes:
        """PHP's bytes, or `!` and PHP's error message when decoding or encoding fails."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        with self.lock:
            self.process.stdin.write(base64.b64encode(body) + b"\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"php exited with {self.process.wait()}")
        return line[:-1]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


@dataclass
class PhpReceiver:
    """A receiver script from tests/php under `php -S 127.0.0.1:<port>`."""

    script: str
    process: subprocess.Popen[bytes]
    port: int
    record_file: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def records(self) -> list[dict[str, Any]]:
        """Every request so far: path, verified, id, timestamp, signature, body (bytes)."""
        text = self.record_file.read_text() if self.record_file.exists() else ""
        rows = [json.loads(line) for line in text.splitlines()]
        for row in rows:
            row["body"] = base64.b64decode(row["body"])
        return rows

    def for_ids(self, ids: set[str]) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["id"] in ids]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_php_receiver(script: str, secret: str, folder: Path) -> PhpReceiver:
    """Start `php -S` on a free port with `script` as its router; wait until it accepts."""
    record_file = folder / f"{script}.jsonl"
    env = {**os.environ, "WEBHOOK_SECRET": secret, "RECORD_FILE": str(record_file)}
    for _ in range(5):  # a free port can be taken between finding it and binding it
        port = free_port()
        process = subprocess.Popen(
            [php_binary(), "-S", f"127.0.0.1:{port}", str(PHP_DIR / script)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if _accepts(port, process, timeout=10):
            return PhpReceiver(script, process, port, record_file)
        process.kill()
        process.wait()
    raise AssertionError(f"php -S {script} did not start")


def _accepts(port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if connects(port, timeout=1):
            return True
        time.sleep(0.05)
    return False
