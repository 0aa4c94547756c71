"""One command on a pooled redis-py connection, without the client's layers (retry wrapper,
event dispatch, response callbacks): what the scripts' calls need, and nothing more.

A connection that failed mid-command is disconnected before it goes back to its pool: a
half-written command is never run, and a half-read reply must not be read by the next one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis


@contextmanager
def taken(pool: Any) -> Iterator[Any]:
    """A connection of `pool`, given back when done."""
    conn = pool.get_connection()
    try:
        yield conn
    finally:
        pool.release(conn)


def send(conn: Any, *command: Any) -> None:
    try:
        conn.send_command(*command)
    except redis.RedisError:
        conn.disconnect()
        raise


def read(conn: Any) -> Any:
    """The reply; a Redis error reply (a script's, a refusal) leaves the connection usable."""
    try:
        return conn.read_response()
    except redis.exceptions.ResponseError:
        raise
    except redis.RedisError:
        conn.disconnect()
        raise


def call(pool: Any, *command: Any) -> Any:
    """`command` sent on a connection of `pool`, and its reply."""
    with taken(pool) as conn:
        send(conn, *command)
        return read(conn)
