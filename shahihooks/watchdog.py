"""The deadline of an attempt: one thread per process shuts down the sockets of attempts
past their deadline, whatever reads or writes them (requests' timeouts bound each socket
read only, so a peer trickling a byte a second would hold an attempt forever).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time


class Watchdog:
    """Shuts down the sockets of attempts past their deadline (one thread per process)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._watched: dict[int, tuple[float, list[socket.socket]]] = {}
        self._next = 0
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._wakes_at = 0.0  # when the thread looks next: an earlier deadline wakes it

    def begin(self, deadline: float) -> int:
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="shahihooks-deadlines", daemon=True
                )
                self._thread.start()
            self._next += 1
            self._watched[self._next] = (deadline, [])
            if deadline < self._wakes_at:
                self._lock.notify()
            return self._next

    def watch(self, attempt: int, sock: socket.socket) -> None:
        with self._lock:
            watched = self._watched.get(attempt)
            if watched is not None:
                watched[1].append(sock)

    def end(self, attempt: int) -> None:
        with self._lock:
            self._watched.pop(attempt, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                late = [k for k, (deadline, _) in self._watched.items() if deadline <= now]
                for attempt in late:
                    for sock in self._watched.pop(attempt)[1]:
                        shut_down(sock)
                soonest = min((d for d, _ in self._watched.values()), default=now + 60)
                self._wakes_at = soonest
                self._lock.wait(max(0.01, soonest - now))


def shut_down(sock: socket.socket) -> None:
    """Shut the connection down under whatever reads or writes it (TLS included)."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


watchdog = Watchdog()


class _CurrentPost(threading.local):
    """The attempt this thread is making."""

    id: int = 0  # the POST this thread is making, as the watchdog knows it (0: none)
    reused: bool = False  # its request went out on a kept-alive connection


current_post = _CurrentPost()


def watch(sock: socket.socket | None) -> None:
    """Add `sock` to the attempt this thread is making: shut down at its deadline."""
    if sock is not None and current_post.id:
        watchdog.watch(current_post.id, sock)
