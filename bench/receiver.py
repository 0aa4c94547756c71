"""A fast HTTP/1.1 receiver for benchmarks: asyncio, keep-alive, answers 200 (or 500 on
paths starting /fail; 200 after 5 ms on paths starting /slow; nothing ever on paths starting
/hang, the connection kept open, as a server that hangs). GET /_stats returns
{"count", "first", "last", "failed", "hung"}: 2xx answers, the wall-clock time of the first
and the last, 500s, and requests left hanging.

On paths starting /lat the wall-clock time each `webhook-id` first arrived is kept, by path:
GET /_arrivals?path=/lat/x returns {id: time}. Only those paths read the headers, so the
other paths' hot path is unchanged. GET /_reset forgets everything.

    python -m bench.receiver PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import unquote

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"
FAIL = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
SLOW_S = 0.005
WEBHOOK_ID = b"webhook-id:"


class Stats:
    count = 0
    first = 0.0
    last = 0.0
    failed = 0
    hung = 0
    arrivals: dict[str, dict[str, float]] = {}  # noqa: RUF012  (path -> webhook-id -> time)


class Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.answer(head.split(b" ", 2), head)

    def answer(self, request_line: list[bytes], head: bytes) -> None:
        method, path = request_line[0], request_line[1]
        if method == b"GET" and path.startswith(b"/_"):
            self.control(path)
            return
        if path.startswith(b"/fail"):
            Stats.failed += 1
            self.transport.write(FAIL)  # type: ignore[attr-defined]
            return
        if path.startswith(b"/slow"):
            asyncio.get_running_loop().call_later(SLOW_S, self.ok)
            return
        if path.startswith(b"/hang"):
            Stats.hung += 1  # never answered: the sender's timeout ends it
            return
        if path.startswith(b"/lat"):
            arrived(path.decode(), head)
        self.ok()

    def control(self, path: bytes) -> None:
        """The bench's own requests: its counts, the arrivals at one path, a reset."""
        if path == b"/_stats":
            body = json.dumps(
                {
                    "count": Stats.count,
                    "first": Stats.first,
                    "last": Stats.last,
                    "failed": Stats.failed,
                    "hung": Stats.hung,
                }
            ).encode()
        elif path.startswith(b"/_arrivals?path="):
            wanted = unquote(path[len(b"/_arrivals?path=") :].decode())
            body = json.dumps(Stats.arrivals.get(wanted, {})).encode()
        elif path == b"/_reset":
            Stats.count, Stats.first, Stats.last, Stats.failed = 0, 0.0, 0.0, 0
            Stats.hung, Stats.arrivals = 0, {}
            body = b"{}"
        else:
            self.transport.write(  # type: ignore[attr-defined]
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
            )
            return
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"  # type: ignore[attr-defined]
            % (len(body), body)
        )

    def ok(self) -> None:
        now = time.time()
        if not Stats.count:
            Stats.first = now
        Stats.count += 1
        Stats.last = now
        self.transport.write(OK)  # type: ignore[attr-defined]


def arrived(path: str, head: bytes) -> None:
    """Keep when this delivery (its `webhook-id`) first reached `path`."""
    now = time.time()
    for line in head.split(b"\r\n")[1:]:
        if line[:11].lower() == WEBHOOK_ID:
            Stats.arrivals.setdefault(path, {}).setdefault(line[11:].strip().decode(), now)
            return


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
