"""One HTTPS POST: TLS verified, redirects not followed, bounded in time and in bytes read.

The whole attempt — connect, TLS handshake, sending, the status line, the headers, the body
— ends by one wall-clock deadline (`SHAHIHOOKS_TIMEOUT`): requests' own timeouts apply to
each socket read, so a peer trickling a byte a second would hold it forever; here a
watchdog (watchdog.py) shuts the attempt's sockets down at the deadline. The lease that an
attempt holds its delivery by outlasts the deadline by construction (timings.py).

Each worker thread has its own `requests.Session` (created lazily, so after a fork), whose
connections resolve the host, vet every address (`safety.check_addresses`) and only then
connect, to a vetted address: no connection is ever opened to a refused one. TLS (SNI and
the certificate check) still goes by the host name. Proxies and `.netrc` from the
environment are ignored: a webhook goes straight to its target.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from shahihooks import logmask
from shahihooks.errors import ConfigurationError, UnsafeTargetError
from shahihooks.safety import Network, check_addresses, check_url, redact_text
from shahihooks.settings import Settings
from shahihooks.version import __version__
from shahihooks.watchdog import current_post, watch, watchdog

logmask.install()  # urllib3's DEBUG lines show each request's path and query

USER_AGENT = f"shahihooks/{__version__} (+https://pypi.org/project/shahihooks/)"
_CONNECT_TIMEOUT_MAX_S = 5.0


@dataclass(frozen=True)
class Response:
    """What one attempt produced: a status, or an error saying why there is none."""

    status: int | None
    duration_s: float
    body: str = ""
    retry_after: str | None = None
    location: str | None = None
    error: str | None = None
    permanent: bool = False  # a refusal no retry can change (a private address): dead now

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


SocketOption = tuple[int, int, int | bytes]


def open_socket(
    host: str,
    port: int,
    allow: tuple[Network, ...],
    timeout: float | None,
    *,
    source_address: tuple[str, int] | None = None,
    socket_options: list[SocketOption] | None = None,
) -> socket.socket:
    """A TCP connection to `host`: resolve, vet every address, then connect to a vetted one.

    Raises UnsafeTargetError (before any connection is opened) if any address of `host` is
    refused, socket.gaierror if it does not resolve, OSError if no address connects.
    """
    infos = lookup(host, port)
    check_addresses((str(info[4][0]) for info in infos), allow, host)
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error or OSError(f"{host!r} resolved to no address")


LOOKUP_CACHE_S = 30.0  # a name's addresses are looked up again after this
LOOKUP_FAILURE_CACHE_S = 5.0  # a name that did not resolve is not asked about again sooner
_lookups: dict[tuple[str, int], tuple[float, list[Any] | socket.gaierror]] = {}
_lookups_lock = threading.Lock()


def lookup(host: str, port: int) -> list[Any]:
    """getaddrinfo, remembered briefly (a failure more briefly), so that a slow or broken
    resolver costs one attempt a wait, not every attempt to that host. The addresses are
    vetted at every connection anyway."""
    key = (host, port)
    now = time.monotonic()
    with _lookups_lock:
        hit = _lookups.get(key)
    if hit is not None and hit[0] > now:
        if isinstance(hit[1], socket.gaierror):
            raise socket.gaierror(hit[1].errno, hit[1].strerror)
        return hit[1]
    try:
        infos: list[Any] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        with _lookups_lock:
            _lookups[key] = (time.monotonic() + LOOKUP_FAILURE_CACHE_S, exc)
        raise
    with _lookups_lock:
        if len(_lookups) > 10_000:
            _lookups.clear()
        _lookups[key] = (time.monotonic() + LOOKUP_CACHE_S, infos)
    return infos


def _guarded(base: type[HTTPConnection], allow: tuple[Network, ...]) -> type[HTTPConnection]:
    class Guarded(base):  # type: ignore[valid-type,misc]
        def request(self, *args: Any, **kwargs: Any) -> None:
            current_post.reused = self.sock is not None
            watch(self.sock)  # a kept-alive connection: its socket joins this attempt
            super().request(*args, **kwargs)

        def _new_conn(self) -> socket.socket:
            sock = self._open()
            watch(sock)  # the TLS handshake on it is bounded by the attempt's deadline too
            return sock

        def _open(self) -> socket.socket:
            timeout = self.timeout if isinstance(self.timeout, int | float) else None
            try:
                return open_socket(
                    self._dns_host,
                    self.port,
                    allow,
                    timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except socket.gaierror as exc:
                raise NameResolutionError(self.host, self, exc) from exc
            except TimeoutError as exc:
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out (connect timeout={timeout})"
                ) from exc
            except OSError as exc:
                raise NewConnectionError(
                    self, f"Failed to establish a new connection: {exc}"
                ) from exc

    return Guarded


class GuardedAdapter(HTTPAdapter):
    """An adapter whose connections refuse private addresses outside `allow`."""

    def __init__(self, allow: tuple[Network, ...], **kwargs: Any) -> None:
        self._allow = allow
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        https = type(
            "GuardedHTTPSPool",
            (HTTPSConnectionPool,),
            {"ConnectionCls": _guarded(HTTPSConnection, self._allow)},
        )
        http = type(
            "GuardedHTTPPool",
            (HTTPConnectionPool,),
            {"ConnectionCls": _guarded(HTTPConnection, self._allow)},
        )
        self.poolmanager.pool_classes_by_scheme = {"http": http, "https": https}
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


@dataclass(frozen=True)
class _Target:
    """Where one URL's POSTs go: its connection pool, the request line's path, and the
    headers requests would add (User-Agent, Accept-Encoding, basic auth from the URL)."""

    pool: HTTPConnectionPool
    path: str
    headers: dict[str, str]


class _Local(threading.local):
    session: requests.Session | None = None
    pid: int = 0
    key: tuple[Any, ...] = ()
    targets: dict[str, _Target]


_local = _Local()


def session_for(settings: Settings) -> requests.Session:
    """This thread's Session for `settings` (a new one after a fork or a settings change)."""
    verify = settings.tls_verify
    key = (settings.allow_networks, verify)
    if _local.session is None or _local.pid != os.getpid() or _local.key != key:
        session = requests.Session()
        session.trust_env = False
        session.verify = verify
        session.max_redirects = 0
        adapter = GuardedAdapter(settings.allow_networks, pool_connections=64, pool_maxsize=16)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = USER_AGENT
        _local.session, _local.pid, _local.key = session, os.getpid(), key
        _local.targets = {}
    return _local.session


def _target(url: str, settings: Settings) -> _Target:
    """The pool, path and headers of `url`, worked out by requests once per thread and URL.

    The hot path then drives urllib3's pool itself: the TLS configuration, the guarded
    connections and the headers are requests' own, without a PreparedRequest, a Response
    and a cookie jar per POST (and no cookie travels from one delivery to the next).
    """
    session = session_for(settings)
    found = _local.targets.get(url)
    if found is not None and found.pool.pool is not None:  # a pool is closed once evicted
        return found
    request = session.prepare_request(requests.Request("POST", url))
    adapter: Any = session.get_adapter(url)
    pool = adapter.get_connection_with_tls_context(request, settings.tls_verify)
    headers = {k: v for k, v in request.headers.items() if k.lower() != "connection"}
    found = _Target(pool, request.path_url, headers)
    if len(_local.targets) > 10_000:
        _local.targets.clear()
    _local.targets[url] = found
    return found


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    settings: Settings,
) -> Response:
    """POST `body` to `url` once; never raises for what the network or the peer does."""
    timeout = urllib3.Timeout(
        connect=min(settings.timeout_s, _CONNECT_TIMEOUT_MAX_S), read=settings.timeout_s
    )
    start = time.monotonic()
    deadline = start + settings.timeout_s
    current_post.id = watchdog.begin(deadline)
    try:
        check_url(url, settings)  # cached: a URL that cannot be sent is refused, not raised
        target = _target(url, settings)
        send = functools.partial(
            target.pool.urlopen,
            "POST",
            target.path,
            body=body,
            headers={**target.headers, **headers, "Content-Length": str(len(body))},
            retries=False,
            redirect=False,
            assert_same_host=False,
            timeout=timeout,
            preload_content=False,
            release_conn=False,
        )
        try:
            resp = send()
        except urllib3.exceptions.ProtocolError:
            if not current_post.reused or time.monotonic() >= deadline:  # not cut by the deadline
                raise
            # a kept-alive connection the receiver had closed meanwhile (idle servers do):
            # the request most likely never reached it: once more, on a new connection
            resp = send()
        try:
            text = _read_bounded(resp, settings.max_response_bytes, deadline)
        finally:
            _release(resp)
        return Response(
            status=resp.status,
            duration_s=time.monotonic() - start,
            body=text,
            retry_after=resp.headers.get("Retry-After"),
            location=resp.headers.get("Location"),
        )
    except ConfigurationError as exc:  # UnsafeTargetError, or a URL that cannot be sent
        return Response(None, time.monotonic() - start, error=f"refused: {exc}", permanent=True)
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        elapsed = time.monotonic() - start
        if elapsed >= settings.timeout_s:
            error = f"timeout: no complete answer within {settings.timeout_s:g} s"
        else:
            error = redact_text(describe_error(exc), url)
        return Response(None, elapsed, error=error)
    finally:
        watchdog.end(current_post.id)
        current_post.id = 0


def _release(resp: Any) -> None:
    """Give the connection back for the next POST if the answer was read to its end, else
    close it (an unread rest would be read as the next answer)."""
    if resp.length_remaining not in (0, None) or (not resp.isclosed() and resp.chunked):
        resp.close()
    resp.release_conn()


def _read_bounded(resp: Any, limit: int, deadline: float) -> str:
    """Up to `limit` bytes of the body, stopping at the deadline; the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in resp.stream(8192, decode_content=True):
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit or time.monotonic() > deadline:
                break
    except (urllib3.exceptions.HTTPError, OSError):
        pass  # the status is what counts; a broken body does not change it
    return b"".join(chunks)[:limit].decode("utf-8", "replace")


def describe_error(exc: BaseException) -> str:
    """A short, log-friendly cause: timeout, refused, reset, TLS, DNS..."""
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError | urllib3.exceptions.SSLError):
        return "tls error: " + _innermost(exc)
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # urllib3 makes it a timeout
        return "connection error: " + _innermost(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout | urllib3.exceptions.ConnectTimeoutError):
        return "connect timeout"
    if isinstance(
        exc,
        requests.exceptions.ReadTimeout
        | requests.exceptions.Timeout
        | urllib3.exceptions.ReadTimeoutError
        | TimeoutError,
    ):
        return "read timeout"
    if isinstance(
        exc,
        requests.exceptions.ConnectionError
        | urllib3.exceptions.NewConnectionError
        | urllib3.exceptions.ProtocolError
        | urllib3.exceptions.NameResolutionError
        | OSError,
    ):
        inner = _innermost(exc)
        if isinstance(exc.__context__, UnsafeTargetError) or "refused:" in text:
            return inner
        return "connection error: " + inner
    return f"{type(exc).__name__}: {text[:200]}"


def _innermost(exc: BaseException) -> str:
    seen = exc
    while True:
        nxt = seen.__cause__ or seen.__context__
        if nxt is None or nxt is seen:
            break
        seen = nxt
        if isinstance(seen, UnsafeTargetError):
            return f"refused: {seen}"
    reason = getattr(seen, "reason", None)
    text = str(reason or seen)
    return text[:300]
