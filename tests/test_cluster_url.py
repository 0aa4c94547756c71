"""SHAHIHOOKS_REDIS_URL naming several nodes of a Redis Cluster (clusterurl.py): what a list
means, what it refuses (naming the item, credentials masked), and where it is refused."""

from __future__ import annotations

import pytest
from redis.connection import SSLConnection

from shahihooks.clusterurl import startup_nodes
from shahihooks.errors import ConfigurationError
from shahihooks.safety import redact_url
from shahihooks.settings import Settings

AMQP = "amqp://guest:guest@127.0.0.1:5672//"
PW = "s3cret-pw"


def cluster(url: str) -> Settings:
    return Settings.from_env(
        {
            "SHAHIHOOKS_REDIS_URL": url,
            "SHAHIHOOKS_REDIS_CLUSTER": "1",
            "SHAHIHOOKS_BROKER_URL": AMQP,
        }
    )


def test_a_list_names_every_node_with_the_first_urls_options() -> None:
    found = startup_nodes(f"redis://app:{PW}@10.0.0.1:7000/0, redis://10.0.0.2:7001,redis://h3")
    assert found.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001), ("h3", 6379))
    assert dict(found.options) == {"username": "app", "password": PW}
    # the same credentials again on a later item are fine
    again = startup_nodes(f"redis://:{PW}@a:7000,redis://:{PW}@b:7000")
    assert again.nodes == (("a", 7000), ("b", 7000))
    assert dict(again.options) == {"password": PW}


def test_one_url_is_a_list_of_one_and_tls_carries_over() -> None:
    assert startup_nodes("redis://node1:7000").nodes == (("node1", 7000),)
    found = startup_nodes("rediss://a:7000?ssl_cert_reqs=none,rediss://b:7000")
    assert found.nodes == (("a", 7000), ("b", 7000))
    assert dict(found.options) == {"ssl_cert_reqs": "none", "connection_class": SSLConnection}


@pytest.mark.parametrize(
    ("url", "bad", "why"),
    [
        (f"redis://:{PW}@a:7000,b:7000", "b:7000", "each node is a redis:// or rediss:// URL"),
        (f"redis://:{PW}@a:7000,redis://b:7000/1", "redis://b:7000/1", "a db other than 0"),
        (f"redis://:{PW}@a:7000,rediss://b:7000", "rediss://b:7000", "not in the first URL's"),
        (f"redis://:{PW}@a:7000,redis://:pw2@b:7000", "redis://***:***@b:7000", "password"),
        (f"redis://:{PW}@a:7000,redis://b:x", "redis://b:x", "Port could not be cast"),
        (f"redis://:{PW}@a:7000,redis://", "redis://", "names no host"),
        (f"redis://:{PW}@a:7000,,redis://b:7000", "", "an empty item"),
        (f"sentinel://:{PW}@a:26379,redis://b:7000", "sentinel://***:***@a:26379", "redis://"),
    ],
)
def test_a_bad_item_is_refused_at_load_naming_it_masked(url: str, bad: str, why: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        cluster(url)
    message = str(caught.value)
    assert message.startswith("SHAHIHOOKS_REDIS_URL: ")
    assert why in message
    assert bad in message
    assert PW not in message
    assert "pw2" not in message


def test_a_list_without_the_cluster_setting_is_refused_naming_it_masked() -> None:
    url = f"redis://:{PW}@10.0.0.1:7000,redis://:{PW}@10.0.0.2:7000"
    with pytest.raises(ConfigurationError, match="only a Redis Cluster takes") as caught:
        Settings.from_env({"SHAHIHOOKS_REDIS_URL": url})
    message = str(caught.value)
    assert "redis://***:***@10.0.0.1:7000,redis://***:***@10.0.0.2:7000" in message
    assert "SHAHIHOOKS_REDIS_CLUSTER=1" in message
    assert PW not in message
    # in Django, named as Django's setting is written
    with pytest.raises(ConfigurationError, match=r'settings.SHAHIHOOKS\["REDIS_URL"\]='):
        Settings.from_mapping({"REDIS_URL": url}, source='settings.SHAHIHOOKS["{}"]')


def test_a_list_is_not_the_broker_and_is_shown_masked() -> None:
    url = f"redis://:{PW}@10.0.0.1:7000,redis://:{PW}@10.0.0.2:7000"
    with pytest.raises(ConfigurationError, match="must be RabbitMQ") as caught:
        Settings(redis_url=url, redis_cluster=True)  # the broker defaults to the state's URL
    assert PW not in str(caught.value)
    assert "redis://***:***@10.0.0.2:7000" in str(caught.value)
    settings = cluster(url)
    assert settings.redis_url == url
    assert PW not in repr(settings)
    assert "redis://***:***@10.0.0.1:7000,redis://***:***@10.0.0.2:7000" in repr(settings)


def test_redact_url_masks_each_url_of_a_list() -> None:
    shown = redact_url(f"redis://app:{PW}@a:7000,rediss://app:{PW}@b:7000/0?ssl_cert_reqs=none")
    assert shown == "redis://***:***@a:7000,rediss://***:***@b:7000/0?***"
    # no scheme after the comma: one URL, whose userinfo is everything before the last '@'
    assert redact_url(f"redis://a:7000,app:{PW}@b:7000") == "redis://***:***@b:7000"
    # a comma in a webhook URL's path is not a list
    assert redact_url("https://example.com/a,b/c") == "https://example.com/a,b/c"


def test_a_list_after_a_path_and_commas_inside_a_url_are_masked() -> None:
    # a first item with a db path: the second's credentials are still its own to mask
    listed = redact_url(f"redis://:{PW}@h1:7000/0,redis://:{PW}@h2:7000")
    assert listed == "redis://***:***@h1:7000/0,redis://***:***@h2:7000"
    # a comma inside a password is not a list: the whole userinfo is masked, as before
    for url in (
        "https://user:s3cr,et@hooks.example.com/x",
        "redis://:pa,ss@host:6379/0",
        "sentinel://:pa,ss@h1:26379;sentinel://h2:26379/0",
    ):
        shown = redact_url(url)
        for fragment in ("s3cr", "et@", "pa,", ",ss", "ss@"):
            assert fragment not in shown, shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://:pa,ss@127.0.0.1:6379/0",
        "redis://127.0.0.1:6379/0?client_name=a,b",
        "unix:///run/redis,a.sock",
    ],
)
def test_a_comma_inside_one_url_is_not_a_list(url: str) -> None:
    settings = Settings.from_env({"SHAHIHOOKS_REDIS_URL": url})
    assert settings.redis_url == url


def test_a_password_with_a_comma_and_an_upper_case_scheme_name_one_node() -> None:
    found = startup_nodes("REDIS://:pa,ss@a:7000,redis://b:7001")
    assert found.nodes == (("a", 7000), ("b", 7001))
    assert dict(found.options) == {"password": "pa,ss"}


def test_an_unreadable_item_with_a_password_is_refused_without_repeating_it() -> None:
    with pytest.raises(ConfigurationError, match="percent-encoded") as caught:
        cluster(f"redis://:{PW}@a:7000,redis://:{PW}:x@b:port")
    assert PW not in str(caught.value)


def test_a_tls_cluster_client_is_built_and_an_unreachable_one_is_an_outage() -> None:
    import redis

    from shahihooks.connections import cluster_client
    from tests.conftest import free_port

    # redis-py reads a rediss:// URL into SSL connections for every node; given as startup
    # nodes with its options, it refused them ("unexpected keyword connection_class")
    for url in (
        f"rediss://:{PW}@127.0.0.1:{free_port()}?ssl_cert_reqs=none",
        f"rediss://127.0.0.1:{free_port()},rediss://127.0.0.1:{free_port()}",
    ):
        with pytest.raises(redis.ConnectionError) as caught:
            cluster_client(url)
        message = str(caught.value)
        assert "connection_class" not in message
        assert "unexpected keyword" not in message
        assert "Error 111" in message or "refused" in message.lower(), message
        assert PW not in message


def two_dead_ports() -> tuple[int, int]:
    from tests.conftest import free_port

    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


def test_no_listed_node_answering_names_each_node_and_why_masked() -> None:
    """redis-py's refusal names only the last node it asked (in a random order): the error
    names every node, with what went wrong, passwords masked; so does the command line."""
    import subprocess
    import sys

    import redis

    from shahihooks.connections import cluster_client
    from tests.conftest import clean_env

    ports = two_dead_ports()
    url = ",".join(f"redis://:{PW}@127.0.0.1:{port}" for port in ports)
    with pytest.raises(redis.ConnectionError) as caught:
        cluster_client(url)
    message = str(caught.value)
    assert message.startswith("no node of the Redis Cluster answers: "), message
    for port in ports:  # each named, masked, with why (on Linux: Error 111 ... refused)
        assert f"redis://***:***@127.0.0.1:{port} (" in message, message
    assert message.lower().count("refused") == 2, message
    assert PW not in message

    env = clean_env(
        SHAHIHOOKS_REDIS_URL=url, SHAHIHOOKS_REDIS_CLUSTER="1", SHAHIHOOKS_BROKER_URL=AMQP
    )
    done = subprocess.run(
        [sys.executable, "-m", "shahihooks", "endpoints", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "no node of the Redis Cluster answers" in done.stderr, done.stderr
    for port in ports:
        assert f"redis://***:***@127.0.0.1:{port} (" in done.stderr, done.stderr
    assert PW not in done.stderr + done.stdout


def test_a_listed_redis_that_is_no_cluster_node_is_named_whatever_the_order() -> None:
    """One node down and one a plain Redis: a configuration error naming both, whichever
    redis-py happened to ask last."""
    from urllib.parse import urlsplit

    from shahihooks.connections import cluster_client
    from tests.conftest import REDIS_URL

    plain = urlsplit(REDIS_URL)
    dead = two_dead_ports()[0]
    items = [f"redis://127.0.0.1:{dead}", f"redis://{plain.hostname}:{plain.port}"]
    for url in (",".join(items), ",".join(reversed(items))):
        for _ in range(3):  # redis-py asks the nodes in a random order
            with pytest.raises(ConfigurationError, match="is not a node of a Redis Cluster") as e:
                cluster_client(url)
            message = str(e.value)
            assert f"redis://127.0.0.1:{dead} (" in message, message
            assert f"{plain.hostname}:{plain.port} (not a node of a Redis Cluster" in message


def test_a_worker_starting_with_no_node_answering_logs_each_node(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker waits for its state Redis as for the broker; what it logs names each node."""
    from shahihooks.worker import check_worker

    ports = two_dead_ports()
    url = ",".join(f"redis://:{PW}@127.0.0.1:{port}" for port in ports)
    settings = cluster(url).with_(secret="s" * 32)
    with caplog.at_level("WARNING", logger="shahihooks.worker"):
        check_worker(settings)
    (logged,) = [r.getMessage() for r in caplog.records if "state Redis yet" in r.getMessage()]
    assert "no node of the Redis Cluster answers" in logged, logged
    for port in ports:
        assert f"redis://***:***@127.0.0.1:{port} (" in logged, logged
    assert PW not in caplog.text


def test_no_listed_node_answering_with_timeouts_in_the_url_still_names_each_node() -> None:
    """A URL's own socket timeouts (parse_url takes them) are the ones each node is asked
    again with: not given twice (a TypeError instead of the outage)."""
    import redis

    from shahihooks.connections import cluster_client

    ports = two_dead_ports()
    query = "?socket_connect_timeout=1&socket_timeout=1"
    url = ",".join(f"redis://:{PW}@127.0.0.1:{port}/{query}" for port in ports)
    with pytest.raises(redis.ConnectionError) as caught:
        cluster_client(url)
    message = str(caught.value)
    assert message.startswith("no node of the Redis Cluster answers: "), message
    for port in ports:
        assert f"127.0.0.1:{port}" in message, message
    assert PW not in message
