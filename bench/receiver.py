"""A fast HTTP/1.1 receiver for benchmarks: asyncio, keep-alive, answers 200 (or 500 on
paths starting /fail; 200 after 5 ms on paths starting /slow). GET /_stats returns
{"count", "first", "last", "failed"}: 2xx answers, the wall-clock time of the first and the
last, and 500s.

    python -m bench.receiver PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"
FAIL = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
SLOW_S = 0.005


class Stats:
    count = 0
    first = 0.0
    last = 0.0
    failed = 0


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
            self.answer(head.split(b" ", 2))

    def answer(self, request_line: list[bytes]) -> None:
        method, path = request_line[0], request_line[1]
        if method == b"GET" and path == b"/_stats":
            body = json.dumps(
                {
                    "count": Stats.count,
                    "first": Stats.first,
                    "last": Stats.last,
                    "failed": Stats.failed,
                }
            ).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"  # type: ignore[attr-defined]
                % (len(body), body)
            )
            return
        if method == b"GET" and path == b"/_reset":
            Stats.count, Stats.first, Stats.last, Stats.failed = 0, 0.0, 0.0, 0
            self.transport.write(OK)  # type: ignore[attr-defined]
            return
        if path.startswith(b"/fail"):
            Stats.failed += 1
            self.transport.write(FAIL)  # type: ignore[attr-defined]
            return
        if path.startswith(b"/slow"):
            asyncio.get_running_loop().call_later(SLOW_S, self.ok)
            return
        self.ok()

    def ok(self) -> None:
        now = time.time()
        if not Stats.count:
            Stats.first = now
        Stats.count += 1
        Stats.last = now
        self.transport.write(OK)  # type: ignore[attr-defined]


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
