"""SHAHIHOOKS_REDIS_URL for a Redis Cluster (SHAHIHOOKS_REDIS_CLUSTER): the URL of one node,
or of several, comma-separated, so that a process starting while one of them is down still
finds the cluster (the client asks the first that answers for the others).

`redis://:pw@10.0.0.1:7000,redis://10.0.0.2:7000`: every item is a `redis://` (or
`rediss://`) URL of one node, in the same scheme; the first URL's connection options
(username, password, query options such as `ssl_cert_reqs`) reach every node, and a later
item may repeat them or leave them out, never name others. The db is 0 or left out (a Cluster
has no other). Pure: settings.py checks the value at load, connections.py builds the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.connection import parse_url

from shahihooks.safety import NEXT_URL, redact_url

SCHEMES = ("redis://", "rediss://")


@dataclass(frozen=True)
class StartupNodes:
    """Where a Cluster client starts: the nodes (redis-py asks them in a random order until
    one answers) and the options of all."""

    nodes: tuple[tuple[str, int], ...]  # (host, port)
    options: tuple[tuple[str, Any], ...]  # the first URL's, as redis-py's parse_url gives them


def node_urls(url: str) -> list[str]:
    """The URLs of a list, split where a comma is followed by a scheme (a comma in a
    password or a query option is part of its URL)."""
    return [item.strip() for item in NEXT_URL.split(url)]


def is_node_list(url: str) -> bool:
    """True if `url` names several nodes (only a Redis Cluster takes such a list)."""
    return len(node_urls(url)) > 1


def startup_nodes(url: str) -> StartupNodes:
    """The nodes and connection options `url` names; ValueError naming the bad item (its
    credentials masked)."""
    items = node_urls(url)
    host, port, first = _node(items[0])
    nodes = [(host, port)]
    for item in items[1:]:
        host, port, options = _node(item)
        if item.partition("://")[0].lower() != items[0].partition("://")[0].lower():
            raise ValueError(f"{redact_url(item)!r} is not in the first URL's scheme")
        differ = sorted(k for k, v in options.items() if k not in first or first[k] != v)
        if differ:
            raise ValueError(
                f"{redact_url(item)!r} names other connection options than the first URL "
                f"({', '.join(differ)}): every node is reached with the first's"
            )
        nodes.append((host, port))
    return StartupNodes(tuple(nodes), tuple(first.items()))


def _node(item: str) -> tuple[str, int, dict[str, Any]]:
    """One item's host, port (6379 if left out) and connection options."""
    if not item or item.startswith(",") or item.endswith(","):
        raise ValueError("an empty item in the list of nodes (two commas, or one at an end)")
    shown = repr(redact_url(item))
    if not item.lower().startswith(SCHEMES):
        raise ValueError(f"{shown} is not a redis:// or rediss:// URL of a Cluster node")
    scheme, sep, rest = item.partition("://")
    try:
        options: dict[str, Any] = parse_url(scheme.lower() + sep + rest)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        if "," in item:
            raise ValueError(
                f"{shown}: after a comma, each node is a redis:// or rediss:// URL of its own"
            ) from None
        # redis-py's words may repeat part of a password: said only of an item without one
        why = "a ':', '@' or '/' in a password must be percent-encoded" if "@" in item else exc
        raise ValueError(f"{shown} is not a URL redis-py can read: {why}") from None
    host = options.pop("host", "")
    if not host:
        raise ValueError(f"{shown} names no host")
    if options.pop("db", 0) != 0:
        raise ValueError(f"{shown} names a db other than 0, which a Redis Cluster does not have")
    return host, int(options.pop("port", 6379)), options
