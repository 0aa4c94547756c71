"""Redis connections and the Lua scripts, one client per process and URL."""

from __future__ import annotations

import os
import threading
from importlib import resources
from typing import Any

import redis

from shahihooks.errors import ConfigurationError

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}
_scripts: dict[tuple[int, str], Any] = {}


def redis_client(url: str) -> redis.Redis:
    """A shared client for `url` (a new pool after a fork), with bounded timeouts."""
    key = (os.getpid(), url)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                try:
                    client = redis.Redis.from_url(
                        url,
                        socket_timeout=10,
                        socket_connect_timeout=5,
                        health_check_interval=30,
                        max_connections=64,
                    )
                except ValueError as exc:
                    raise ConfigurationError(f"SHAHIHOOKS_REDIS_URL {url!r}: {exc}") from None
                _clients[key] = client
    return client


def script(client: redis.Redis, name: str) -> Any:
    """The registered Lua script `lua/<name>.lua` (EVALSHA, loaded on first use)."""
    key = (id(client), name)  # clients live as long as the process (see redis_client)
    found = _scripts.get(key)
    if found is None:
        source = resources.files("shahihooks").joinpath(f"lua/{name}.lua").read_text()
        found = client.register_script(source)
        _scripts[key] = found
    return found
