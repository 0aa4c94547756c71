"""The shard mapping (shards.py) as pure functions, and the cluster setting's refusals."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from shahihooks import shards
from shahihooks.errors import ConfigurationError
from shahihooks.keys import url_tag
from shahihooks.settings import Settings
from tests.cluster import AMQP
from tests.conftest import REDIS_URL


def test_shard_slots_spread_one_in_each_sixteenth() -> None:
    tags = shards.shard_tags()
    assert len(tags) == shards.N_SHARDS == len(set(tags))
    slots = [key_slot(shards.shard_prefix("shahihooks", k).encode()) for k in range(16)]
    assert [s // 1024 for s in slots] == list(range(16))
    # every key of a shard hashes to its slot: its hash tag
    prefix = shards.shard_prefix("p", 3)
    assert key_slot(f"{prefix}:dlv:evt_1-abc".encode()) == key_slot(f"{prefix}:schedule".encode())


def test_shard_mapping_is_stable() -> None:
    assert shards.shard_tags() == shards.shard_tags.__wrapped__()
    assert shards.shard_prefix("shahihooks", 0) == f"shahihooks:{{{shards.shard_tags()[0]}}}"
    tag = url_tag("https://example.com/hook")
    assert shards.shard_of_tag(tag) == int(tag[:8], 16) % 16
    assert shards.shard_of_delivery(f"evt_{'a' * 32}-{tag}") == shards.shard_of_tag(tag)
    spread = {shards.shard_of_tag(url_tag(f"https://example.com/{i}")) for i in range(200)}
    assert spread == set(range(16))


def test_cluster_setting_refuses_a_redis_broker() -> None:
    with pytest.raises(ConfigurationError, match="redis://127.0.0.1:6379/0"):
        Settings(redis_cluster=True)
    with pytest.raises(ConfigurationError, match="must be RabbitMQ"):
        Settings(redis_cluster=True, broker_url="sentinel://127.0.0.1:26379")
    assert Settings(redis_cluster=True, broker_url=AMQP).redis_cluster


def test_cluster_setting_refuses_a_redis_that_is_not_a_cluster() -> None:
    settings = Settings(redis_cluster=True, broker_url=AMQP, redis_url=REDIS_URL.rsplit("/", 1)[0])
    with pytest.raises(ConfigurationError, match="is not a node of a Redis Cluster"):
        shards.shards(settings)
