"""For tests and benches only (tests/cluster.py, bench/cluster.py), never imported by
shahihooks itself: redis-server nodes with --cluster-enabled on 127.0.0.1, each on a free
port whose cluster bus is free too, in a temporary folder. Here once, so the two clusters
start their nodes alike; how the slots are given out (redis-cli --cluster create, or by hand)
stays with each.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import ClassVar

import redis

BUS_OFFSET = 10_000  # a node's cluster bus listens on its port + 10000
START_S = 10.0  # how long a node may take to listen


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:`port`."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus (port + 10000, at most 65535) is free too."""
    while True:
        port = free_port()
        if port + BUS_OFFSET <= 65_535 and port not in taken and not listening(port + BUS_OFFSET):
            return port


@dataclass(kw_only=True)
class LocalNodes:
    """Cluster-enabled nodes, by port; `close` stops them and removes their folder."""

    FOLDER_PREFIX: ClassVar[str] = "shahihooks-cluster-"
    NODE_TIMEOUT_MS: ClassVar[int] = 2000  # --cluster-node-timeout: a silent node's grace
    folder: str = ""  # a new temporary one if left out
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folder = self.folder or tempfile.mkdtemp(prefix=self.FOLDER_PREFIX)

    def start_nodes(self, count: int) -> list[int]:
        """`count` nodes started, each listening once this returns; their ports, in order."""
        taken: set[int] = set()
        for _ in range(count):
            taken.add(cluster_port(taken))
        ports = sorted(taken)
        for port in ports:
            argv = self.argv(port)
            self.procs[port] = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # noqa: S603 - our own argv
        deadline = time.monotonic() + START_S
        for port in ports:
            while not listening(port):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server on {port} not listening after {START_S:g} s")
                time.sleep(0.01)
        return ports

    def argv(self, port: int) -> list[str]:
        return [
            "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", self.folder),
            *("--cluster-enabled", "yes", "--cluster-node-timeout", str(self.NODE_TIMEOUT_MS)),
            *("--cluster-config-file", f"{self.folder}/nodes-{port}.conf"),
            # its own: a replica writes the RDB of its full sync, which a node started later
            # in the folder would load (and claim the slots of its keys)
            *("--dbfilename", f"dump-{port}.rdb"),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
        ]

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5)

    def close(self, sig: int = signal.SIGTERM) -> None:
        """Every node sent `sig` and waited for (killed if it lingers), the folder removed."""
        for proc in self.procs.values():
            proc.send_signal(sig)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
