"""`shahihooks worker --processes N`: N single-process workers, each started again from this
worker's own command line, under one supervisor that passes its signals on."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

from shahihooks.cli.commands import without_options


def respawn(extra: list[str]) -> list[str]:
    """This worker's own command line without --processes: the same entry point (shahihooks,
    `python manage.py shahihooks`, `flask shahihooks`), so each child has the same settings."""
    argv = list(sys.orig_argv[1:])
    if "worker" not in argv:  # not run from a command line (e.g. a test's runner)
        return [sys.executable, "-m", "shahihooks", "worker", *extra]
    return [sys.executable, *without_options(argv, ["--processes"])]


def supervise(processes: int, extra: list[str]) -> int:
    """Run `processes` single-process workers; SIGTERM/SIGINT reach each one, and each one
    stops if the supervisor dies (Linux). Node names carry the supervisor's pid, so two
    supervisors on one machine never share a worker's mailbox."""
    argv = respawn(extra)
    tag = os.getpid()
    children = [
        subprocess.Popen(  # noqa: S603 - our own argv
            [*argv, "--processes", "1", "-n", f"shahihooks{i}.{tag}@%h"],
            preexec_fn=_die_with_parent,
        )
        for i in range(1, processes + 1)
    ]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(child.wait() for child in children)


def _die_with_parent() -> None:
    """In a child, before exec: SIGTERM when the parent dies (PR_SET_PDEATHSIG, Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the supervisor's signals still reach the children
