"""The address guard: an explicit deny list (decided as a pure function, no traffic), refused
at configuration, at emit and at connect time; and no connection is ever opened to a refused
address (a real listener on 127.0.0.1 counts what it accepts)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator

import pytest
import trustme
from click.testing import CliRunner

import shahihooks
from shahihooks import doctor, safety, transport
from shahihooks.cli import main
from shahihooks.endpoints import Endpoint
from shahihooks.safety import check_address, check_url, denied_range
from shahihooks.transport import open_socket, post
from tests.conftest import SECRET, wait_until
from tests.receiver import Receiver, start_receiver

PUBLIC = "93.184.216.34"

REFUSED = [
    # IPv4 special-purpose ranges
    "0.0.0.0",
    "10.1.2.3",
    "100.64.0.1",
    "127.0.0.1",
    "169.254.169.254",
    "172.16.0.1",
    "192.0.0.170",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    # IPv6 special ranges
    "::",
    "::1",
    "100::1",
    "2001:db8::1",
    "3fff::1",
    "5f00::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",
    "ff02::1",
    # the IPv4 special ranges through each IPv6 embedding
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::808:808",  # local-use NAT64: refused whatever it carries
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "::7f00:1",  # IPv4-compatible ::127.0.0.1
    "::808:808",  # IPv4-compatible, even of a public address (deprecated form)
    "::ffff:0:7f00:1",  # IPv4-translated ::ffff:0:127.0.0.1
    "::ffff:0:808:808",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:0:7f00:1::1",  # Teredo with server 127.0.0.1
    "4000::1",  # outside global unicast
]

ALLOWED = [
    "8.8.8.8",
    PUBLIC,
    "1.1.1.1",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of a public address (DNS64 networks)
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize("address", REFUSED)
def test_deny_list_refuses_every_special_range_and_embedding(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert denied_range(ip) is not None
    with pytest.raises(shahihooks.UnsafeTargetError, match=r"refused"):
        check_address(address, ())


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_pass(address: str) -> None:
    assert denied_range(ipaddress.ip_address(address)) is None
    check_address(address, ())


def test_denied_range_names_the_embedding_and_the_range() -> None:
    why = denied_range(ipaddress.ip_address("64:ff9b::a00:1"))
    assert why == "NAT64 form of 10.0.0.1, private-use 10.0.0.0/8"
    assert "6to4 form of 127.0.0.1, loopback" in (
        denied_range(ipaddress.ip_address("2002:7f00:1::")) or ""
    )


def test_an_allowed_network_lets_its_addresses_through() -> None:
    check_address("127.0.0.1", (ipaddress.ip_network("127.0.0.0/8"),))
    with pytest.raises(shahihooks.UnsafeTargetError):
        check_address("10.0.0.1", (ipaddress.ip_network("127.0.0.0/8"),))


@pytest.mark.parametrize(
    "url",
    [
        "https://[64:ff9b::a00:1]/hook",
        "https://[2002:a00:1::1]/hook",
        "https://[::ffff:0:7f00:1]/hook",
        "https://[::7f00:1]/hook",
        "https://169.254.169.254/latest",
        "https://127.1/hook",  # legacy IPv4 forms are literals too
        "https://2130706433/hook",
        "https://0x7f.0.0.1/hook",
    ],
)
def test_a_literal_refused_address_is_refused_when_configured(url: str) -> None:
    with pytest.raises(shahihooks.UnsafeTargetError, match="SHAHIHOOKS_URLS: .*refused"):
        shahihooks.Settings(urls=(url,), secret=SECRET)
    with pytest.raises(shahihooks.UnsafeTargetError):
        check_url(url, shahihooks.Settings())


@pytest.fixture
def resolve_to(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, list[str]], list[str]]]:
    """`resolve_to(name, answers)`: `name` resolves to answers[0], then answers[1], ...
    (the last one repeats). Returns the list of answers given so far."""
    real = socket.getaddrinfo
    plans: dict[str, list[str]] = {}
    given: list[str] = []

    def getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> object:
        if isinstance(host, str) and host in plans:
            answers = plans[host]
            address = answers.pop(0) if len(answers) > 1 else answers[0]
            given.append(address)
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    safety._resolved.clear()
    transport._lookups.clear()

    def plan(name: str, answers: list[str]) -> list[str]:
        plans[name] = list(answers)
        return given

    yield plan
    safety._resolved.clear()
    transport._lookups.clear()


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("inside", ["64:ff9b::a00:1", "2002:a00:1::1", "::ffff:0:a00:1"])
def test_a_name_resolving_to_an_embedded_inside_address_is_dead_lettered_at_its_attempt(
    settings, resolve_to, inside: str
) -> None:
    from shahihooks import dead

    resolve_to("embedded.example", [inside])
    s = settings(urls=("https://embedded.example/hook",))
    # emit resolves no name: one endpoint's DNS never slows or fails an emit for the others
    (delivery,) = shahihooks.emit("ticket.created", {"ticket_id": 1})
    assert delivery.status == "queued"
    wait_until(lambda: dead.get(delivery.id, s), what="its dead letter")
    letter = dead.get(delivery.id, s)
    assert letter is not None
    assert f"resolves to {inside}" in letter.reason
    assert letter.attempts == 1  # refused for good: not retried


class Counter:
    """A TCP listener on 127.0.0.1 that counts the connections made to it.

    Counting is exact without waiting: `accepted()` connects a sentinel last and accepts
    until it comes (the accept queue is first in, first out), so every connection opened
    before the call is counted, sentinels excluded.
    """

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.server.settimeout(5)
        self.port: int = self.server.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.sentinels = 0

    def accepted(self) -> int:
        sentinel = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        mine = sentinel.getsockname()
        while True:
            conn, peer = self.server.accept()
            self.conns.append(conn)
            if peer == mine:
                break
        sentinel.close()
        self.sentinels += 1
        return len(self.conns) - self.sentinels

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.server.close()


@pytest.fixture
def listener() -> Iterator[Counter]:
    counter = Counter()
    yield counter
    counter.close()


def test_no_connection_is_opened_to_a_refused_address(
    settings, resolve_to, listener: Counter
) -> None:
    s = settings(allow_networks=(), allow_http=True)
    resolve_to("inside.example", ["127.0.0.1"])
    response = post(f"http://inside.example:{listener.port}/hook", b"{}", {}, s)
    assert response.status is None
    assert "refused" in (response.error or "")
    assert "'inside.example' resolves to 127.0.0.1" in (response.error or "")
    assert listener.accepted() == 0, "not even a TCP handshake reached the refused address"


def test_a_dns_answer_that_changes_after_the_check_opens_no_connection(
    settings, resolve_to, listener: Counter
) -> None:
    s = settings(allow_networks=(), allow_http=True)
    answers = resolve_to("rebind.example", [PUBLIC, "127.0.0.1"])
    url = f"http://rebind.example:{listener.port}/hook"
    safety.check_target(url, s)  # the check sees a public address
    response = post(url, b"{}", {}, s)
    assert answers == [PUBLIC, "127.0.0.1"]
    assert "refused" in (response.error or "")
    assert listener.accepted() == 0


def test_one_refused_address_among_several_refuses_the_host(monkeypatch, listener: Counter) -> None:
    def getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> object:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    allow = (ipaddress.ip_network("127.0.0.0/8"),)
    with pytest.raises(shahihooks.UnsafeTargetError, match=r"10\.0\.0\.1"):
        open_socket("two.example", listener.port, allow, 5)
    assert listener.accepted() == 0


def test_an_allowed_address_is_connected_to(listener: Counter) -> None:
    allow = (ipaddress.ip_network("127.0.0.0/8"),)
    with open_socket("127.0.0.1", listener.port, allow, 5) as sock:
        assert sock.getpeername()[0] == "127.0.0.1"
    assert listener.accepted() == 1


def test_doctor_tcp_check_goes_through_the_guard(settings, resolve_to, listener: Counter) -> None:
    s = settings(allow_networks=(), allow_http=True)
    resolve_to("doctor.example", [PUBLIC, "127.0.0.1"])
    endpoint = Endpoint(f"http://doctor.example:{listener.port}/hook")
    checks = doctor.check_endpoint(endpoint, s, [])
    (address,) = [c for c in checks if "resolves to a public" in c.what]
    assert address.ok, address.what  # the address check saw the public answer
    (tcp,) = [c for c in checks if "TCP connect" in c.what]
    assert not tcp.ok
    assert "TCP connect refused" in tcp.what
    assert "127.0.0.1" in tcp.what
    assert listener.accepted() == 0


@pytest.fixture(scope="module")
def named_receiver(ca: tuple[trustme.CA, str]) -> Receiver:
    """A receiver on 127.0.0.1 whose certificate names only `hooks.test`."""
    return start_receiver(ca[0], ca[1], ("hooks.test",))


def test_tls_checks_the_host_name_not_the_vetted_address(
    settings, resolve_to, named_receiver: Receiver
) -> None:
    s = settings()  # 127.0.0.0/8 allowed, the test CA trusted
    resolve_to("hooks.test", ["127.0.0.1"])
    body = b'{"id":"evt_sni-1"}'
    headers = shahihooks.sign_headers(body, delivery_id="evt_sni-1", event="e.x", secrets=SECRET)
    ok = post(f"https://hooks.test:{named_receiver.port}/sni", body, headers, s)
    assert ok.status == 200, ok.error
    assert (
        named_receiver.requests_to("/sni")[0].header("host") == f"hooks.test:{named_receiver.port}"
    )
    # the same server reached by its address: the certificate does not name it
    wrong = post(f"https://127.0.0.1:{named_receiver.port}/sni-ip", body, headers, s)
    assert wrong.status is None
    assert "tls error" in (wrong.error or "")


def test_doctor_tls_check_uses_the_host_name_on_the_guarded_socket(
    settings, resolve_to, named_receiver: Receiver
) -> None:
    s = settings()
    resolve_to("hooks.test", ["127.0.0.1"])
    checks = doctor.check_endpoint(Endpoint(f"https://hooks.test:{named_receiver.port}/d"), s, [])
    assert [c.ok for c in checks] == [True, True, True], [c.what for c in checks]
    assert "TLS certificate valid until" in checks[2].what


def test_endpoints_add_refuses_an_embedded_inside_address(settings) -> None:
    settings()
    result = CliRunner().invoke(main, ["endpoints", "add", "https://[64:ff9b::a9fe:a9fe]/x"])
    assert result.exit_code == 1
    assert "NAT64 form of 169.254.169.254, link-local" in result.output
