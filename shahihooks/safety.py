"""Where a webhook may be sent, and how a URL is shown: https only, never to an inside address.

An address is refused by an explicit deny list (below), not by `ipaddress.is_global`, whose
answers depend on the interpreter's patch level (Python 3.11.7 predates the fixes for
CVE-2024-4032). IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged
by the IPv4 address they carry; the other embeddings (IPv4-compatible, IPv4-translated,
local-use NAT64, Teredo) are refused outright.

Targets are refused when configured (a literal address in a URL), at `emit` (every address
the name resolves to), and at connect time: `transport.open_socket` resolves, vets every
address, then connects only to a vetted one, so a DNS answer that changes between `emit` and
the connection cannot reach an inside service, and no connection to an inside address is
ever opened.

`redact_url` is how every URL is shown (logs, stats, listings, errors, task arguments).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import time
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import urlsplit

from shahihooks.errors import ConfigurationError, UnsafeTargetError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRules(Protocol):
    """What decides where a webhook may be sent (the settings have both)."""

    @property
    def allow_http(self) -> bool: ...

    @property
    def allow_networks(self) -> tuple[Network, ...]: ...


_RESOLVE_CACHE_S = 60.0
_resolved: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = {}

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# IANA's IPv4 special-purpose registry, plus multicast and the reserved 240/4 (which holds
# the limited broadcast). A few entries are globally reachable by the registry (AS112, AMT,
# 192.0.0.9-10) but are no webhook's home, so they are refused too.
IPV4_DENY: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "'this network'"),
    (_V4("10.0.0.0/8"), "private-use"),
    (_V4("100.64.0.0/10"), "shared address space (carrier-grade NAT)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private-use"),
    (_V4("192.0.0.0/24"), "IETF protocol assignments"),
    (_V4("192.0.2.0/24"), "documentation (TEST-NET-1)"),
    (_V4("192.31.196.0/24"), "AS112"),
    (_V4("192.52.193.0/24"), "AMT"),
    (_V4("192.88.99.0/24"), "6to4 relay anycast"),
    (_V4("192.168.0.0/16"), "private-use"),
    (_V4("192.175.48.0/24"), "AS112 direct delegation"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation (TEST-NET-2)"),
    (_V4("203.0.113.0/24"), "documentation (TEST-NET-3)"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved (and broadcast)"),
)

# IPv6 that is refused whatever it carries. Order matters: the first match names the range.
IPV6_DENY: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("::/96"), "IPv4-compatible (deprecated)"),
    (_V6("::ffff:0:0:0/96"), "IPv4-translated"),
    (_V6("64:ff9b:1::/48"), "local-use NAT64"),
    (_V6("100::/64"), "discard-only"),
    (_V6("100:0:0:1::/64"), "dummy prefix"),
    (_V6("2001::/32"), "Teredo"),
    (_V6("2001::/23"), "IETF protocol assignments"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("5f00::/16"), "SRv6 SIDs"),
    (_V6("fc00::/7"), "unique local"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local (deprecated)"),
    (_V6("ff00::/8"), "multicast"),
)

_MAPPED = _V6("::ffff:0:0/96")
_NAT64 = _V6("64:ff9b::/96")
_SIX_TO_FOUR = _V6("2002::/16")
_GLOBAL_UNICAST = _V6("2000::/3")


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64, 6to4), if any."""
    if address in _MAPPED:
        return "IPv4-mapped", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return "6to4", ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
    return None


def denied_range(address: IPAddress) -> str | None:
    """Why `address` is no webhook target (the range it is in), or None for a public one."""
    if isinstance(address, ipaddress.IPv4Address):
        return next((f"{why} {net}" for net, why in IPV4_DENY if address in net), None)
    carried = embedded_ipv4(address)
    if carried is not None:
        form, ipv4 = carried
        inner = denied_range(ipv4)
        return f"{form} form of {ipv4}, {inner}" if inner else None
    for net, why in IPV6_DENY:
        if address in net:
            return f"{why} {net}"
    if address not in _GLOBAL_UNICAST:
        return f"outside the global unicast range {_GLOBAL_UNICAST}"
    return None


def check_address(address: str, allow_networks: Iterable[Network], host: str | None = None) -> None:
    """Raise UnsafeTargetError unless `address` is public or inside an allowed network."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise UnsafeTargetError(f"{address!r} is not an IP address: refused") from None
    why = denied_range(ip)
    if why is None or any(ip in net for net in allow_networks if net.version == ip.version):
        return
    named = f"{host!r} resolves to {address}" if host and host != address else address
    raise UnsafeTargetError(
        f"{named}, a private, loopback, link-local or reserved address ({why}): refused "
        "(add its network to SHAHIHOOKS_ALLOW_NETWORKS, e.g. 127.0.0.0/8, to allow it)"
    )


def check_addresses(
    addresses: Iterable[str], allow_networks: Iterable[Network], host: str
) -> tuple[str, ...]:
    """All of `addresses` if every one may be reached; one refused address refuses the host."""
    allowed = tuple(allow_networks)
    vetted = tuple(addresses)
    for address in vetted:
        check_address(address, allowed, host)
    return vetted


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names literally, or None for a name.

    Besides `127.0.0.1` and `[::1]`, the legacy IPv4 forms that resolvers accept count as
    literals too (`127.1`, `0x7f.0.0.1`, `2130706433`), with or without the trailing dot of
    a fully qualified name (`127.0.0.1.`).
    """
    bare = host.strip("[]").split("%", 1)[0]
    if not host.startswith("[") and bare.endswith(".") and not bare.endswith(".."):
        bare = bare[:-1]
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


_allowed: set[tuple[str, bool, tuple[Network, ...]]] = set()


def check_url(url: str, rules: TargetRules) -> str:
    """Return `url` if it may be a webhook target under `rules`, else raise.

    Checks the scheme and, when the host is a literal address, the address; names are
    resolved later (`check_target`, and again when connecting). A URL once allowed under
    the same rules is not parsed again (every attempt checks its URL).
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"a webhook URL must be a string, got {type(url).__name__}")
    key = (url, rules.allow_http, rules.allow_networks)
    if key in _allowed:
        return url
    _check_url(url, rules)
    if len(_allowed) > 10_000:
        _allowed.clear()
    _allowed.add(key)
    return url


def _check_url(url: str, rules: TargetRules) -> None:
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ConfigurationError(f"{shown!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        wanted = "http:// or https://" if rules.allow_http else "https://"
        raise ConfigurationError(f"{shown!r} is not an absolute {wanted} URL")
    if parts.scheme == "http" and not rules.allow_http:
        raise UnsafeTargetError(
            f"webhook URLs must be https:// URLs, got {shown!r} "
            "(set SHAHIHOOKS_ALLOW_HTTP=1 for local development only)"
        )
    literal = literal_address(parts.hostname)
    if literal is not None:
        try:
            check_address(str(literal), rules.allow_networks, parts.hostname)
        except UnsafeTargetError as exc:
            raise UnsafeTargetError(f"{shown!r}: {exc}") from None
    elif not parts.netloc.rpartition("@")[2].startswith("["):
        _check_host_name(parts.hostname, shown)


def _check_host_name(host: str, shown: str) -> None:
    """A host name must be one that can be sent: no empty label, none over 63 characters
    (else the IDNA codec raises a UnicodeError deep inside the HTTP client)."""
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    bad = next((label for label in labels if not 0 < len(label) <= 63), None)
    if bad is not None:
        why = "an empty label" if not bad else f"a label of {len(bad)} characters (at most 63)"
        raise ConfigurationError(f"{shown!r} is not a valid URL: its host {host!r} has {why}")
    try:
        host.encode("idna")
    except UnicodeError as exc:
        raise ConfigurationError(
            f"{shown!r} is not a valid URL: its host {host!r} is not a valid name ({exc})"
        ) from None


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


_vetted: dict[tuple[str, bool, tuple[Network, ...]], float] = {}


def check_target(url: str, rules: TargetRules) -> None:
    """Raise unless `url` may be delivered to: scheme, then every address its host has.

    A URL that passed is not looked at again for as long as its addresses are cached
    (emit's hot path); connections are vetted again anyway, each time (transport.py).
    """
    key = (url, rules.allow_http, rules.allow_networks)
    now = time.monotonic()
    if now - _vetted.get(key, -_RESOLVE_CACHE_S) < _RESOLVE_CACHE_S:
        return
    check_url(url, rules)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    check_addresses(resolve(host, port), rules.allow_networks, host)
    if len(_vetted) > 10_000:
        _vetted.clear()
    _vetted[key] = now


_MASK = "***"
# a comma followed by a scheme starts the next URL of a list (a Redis Cluster's nodes); any
# other comma (in a password, a path, a query) belongs to the URL it is in
NEXT_URL = re.compile(r",(?=\s*[A-Za-z][A-Za-z0-9+.-]*://)")
_KNOWN_SCHEMES = frozenset({"http", "https", "redis", "rediss", "unix", "amqp", "amqps"})

# Hosts whose webhook URLs carry their secret in the path: host -> (the path's fixed
# first segments, how many segments after them stay readable); the rest is masked.
PATH_SECRETS: dict[str, tuple[tuple[str, ...], int]] = {
    "hooks.slack.com": (("services",), 2),  # /services/T…/B…/<token>
    "hooks.zapier.com": (("hooks", "catch"), 1),  # /hooks/catch/<account>/<hook id>/
    "discord.com": (("api", "webhooks"), 1),  # /api/webhooks/<id>/<token>
    "discordapp.com": (("api", "webhooks"), 1),
}
TOKEN_MIN_CHARS = 16
_RUN = re.compile(f"[A-Za-z0-9]{{{TOKEN_MIN_CHARS},}}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def redact_url(url: object) -> str:
    """`url` as shown to people: userinfo, query, fragment and path secrets masked; never
    raises.

    `https://user:pw@host:8443/path?token=1` is shown as `https://***:***@host:8443/path?***`.
    Scheme, host, port and path stay readable. A username is masked too (it is often a
    token), and so is a query string (API keys travel there). In the path, a segment that
    looks like a token (`looks_like_token`) is masked, and so is everything after the fixed
    part of the hosts in PATH_SECRETS: `https://hooks.slack.com/services/T0/B0/***`.
    """
    if isinstance(url, bytes):
        url = url.decode("utf-8", "replace")
    if not isinstance(url, str):
        return _MASK
    return _redact(url)


@functools.lru_cache(maxsize=4096)
def _redact(url: str) -> str:
    head, hashed, fragment = url.partition("#")
    head, asked, query = head.partition("?")
    tail = ("?" + _MASK if query else asked) + ("#" + _MASK if fragment else hashed)
    items = NEXT_URL.split(head)  # a list's query, after the first '?', masked whole
    if len(items) > 1:  # several URLs (a Redis Cluster's nodes): each masked alone
        return ",".join(_redact(item) for item in items) + tail
    start = head.find("//")
    if start < 0:
        # no authority: anything before an '@' may still be userinfo ("https:user:pw@host")
        if "@" not in head:
            return redact_path(head) + tail
        scheme, colon, rest = head.partition(":")
        if colon and scheme.lower() in _KNOWN_SCHEMES:
            return f"{scheme}:{_MASK}@{rest.rpartition('@')[2]}{tail}"
        return f"{_MASK}@{head.rpartition('@')[2]}{tail}"
    end = head.find("/", start + 2)
    end = len(head) if end < 0 else end
    authority = head[start + 2 : end]
    userinfo, at, hostport = authority.rpartition("@")
    if at:
        masked = f"{_MASK}:{_MASK}" if ":" in userinfo else _MASK
        authority = f"{masked}@{hostport}"
    host = "" if hostport.startswith("[") else hostport.rpartition(":")[0] or hostport
    return head[: start + 2] + authority + redact_path(head[end:], host) + tail


def looks_like_token(segment: str) -> bool:
    """A path segment that is likely a secret: a UUID, or one that holds a run of 16 or more
    letters and digits with both in it (a random token: hex, base62, base64url), unlike a
    slug of words and numbers (`incoming-webhook-2024`, `order-1a2b3c4d`)."""
    if _UUID.fullmatch(segment):
        return True
    return any(not run.isalpha() and not run.isdigit() for run in _RUN.findall(segment))


def redact_path(path: str, host: str | None = None) -> str:
    """A URL's path with its secret segments masked (see `redact_url`). Without a `host`
    (a path alone, as in a urllib3 log line), every PATH_SECRETS prefix applies."""
    segments = path.split("/")
    first_secret = _first_secret_segment(segments, host)
    return "/".join(
        _MASK if segment and (i >= first_secret or looks_like_token(segment)) else segment
        for i, segment in enumerate(segments)
    )


def _first_secret_segment(segments: list[str], host: str | None) -> int:
    name = host.lower().rstrip(".") if host is not None else None
    for rule_host, (prefix, readable) in PATH_SECRETS.items():
        if name is not None and name != rule_host and not name.endswith("." + rule_host):
            continue
        if [s.lower() for s in segments[1 : 1 + len(prefix)]] == list(prefix):
            return 1 + len(prefix) + readable
    return len(segments)


def redact_text(text: str, url: str) -> str:
    """`text` (an error message about `url`) with the URL's credentials and query masked."""
    try:
        parts = urlsplit(url)
        secrets = [parts.query, parts.fragment, parts.password or "", parts.username or ""]
        shown = redact_path(parts.path, parts.hostname or "").split("/")
        secrets += [s for s, m in zip(parts.path.split("/"), shown, strict=True) if m != s]
    except ValueError:
        secrets = []
    for secret in sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text
