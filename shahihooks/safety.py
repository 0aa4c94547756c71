"""Where a webhook may be sent: https only, and never to private or reserved addresses.

Names are checked twice: when an endpoint is configured or used at `emit` (resolving the
name, so a bad target is refused before anything is enqueued), and on the address a socket
actually connected to, before a byte is sent (so a DNS answer that changes between the
check and the connection cannot reach an internal service).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from shahihooks.errors import UnsafeTargetError
from shahihooks.settings import Network, Settings, check_url

_RESOLVE_CACHE_S = 60.0
_resolved: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = {}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public(address: IPAddress) -> bool:
    """False for private, loopback, link-local, multicast, reserved and unspecified."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_address(address: str, allow_networks: Iterable[Network], host: str | None = None) -> None:
    """Raise UnsafeTargetError unless `address` is public or inside an allowed network."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if is_public(ip) or any(ip in net for net in allow_networks if net.version == ip.version):
        return
    named = f"{host!r} resolves to {address}" if host and host != address else address
    raise UnsafeTargetError(
        f"{named}, a private, loopback, link-local or reserved address: refused "
        "(add its network to SHAHIHOOKS_ALLOW_NETWORKS, e.g. 127.0.0.0/8, to allow it)"
    )


def resolve(host: str, port: int) -> tuple[str, ...]:
    """The addresses `host` resolves to, cached briefly so `emit` stays cheap."""
    key = (host, port)
    now = time.monotonic()
    hit = _resolved.get(key)
    if hit and now - hit[0] < _RESOLVE_CACHE_S:
        return hit[1]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeTargetError(f"the host {host!r} does not resolve: {exc.strerror}") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    _resolved[key] = (now, addresses)
    return addresses


def check_target(url: str, settings: Settings) -> None:
    """Raise unless `url` may be delivered to: scheme, then every address its host has."""
    check_url(url, settings)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for address in resolve(host, port):
        check_address(address, settings.allow_networks, host)


@functools.lru_cache(maxsize=4096)
def redact_url(url: str) -> str:
    """`url` with any password replaced, for logs, stats and dead-letter listings."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
