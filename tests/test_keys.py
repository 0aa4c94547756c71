"""Every key is named alike in keys.py and in the Lua prelude (which builds the keys of the
URL tags, windows and deliveries it meets inside a script); the function library loads."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

import redis

from shahihooks.contract import Common
from shahihooks.emit import delivery_id
from shahihooks.keys import url_tag
from shahihooks.state import SCRIPTS, library
from tests.conftest import ScriptKeys

PROBE = """
setup(ARGV)
return {key('dlv', 'evt_1-abc'), key('body', 'evt_1'), key('rate', 'abc', window_of(7200000)),
        key('backlog', 'abc'), key('done', 'evt_1-abc'), key('dead', 'evt_1-abc'),
        key('stats', '12'), K.schedule, K.releases, K.urls, K.endpoints, K.watermark, K.log,
        K.dead_index, K.retrying, K.seq, K.wmhist, K.totals, K.ops, key('ep', 'abc'),
        key('fly', 'abc'), K.unknown, key('held', 'abc')}
"""


def test_lua_builds_the_same_key_names_as_keys_py(redis_client: redis.Redis) -> None:
    prelude = resources.files("shahihooks").joinpath("lua/prelude.lua").read_text()
    # the common arguments: prefix, lease, grace, limit, window (1 h), backlog max, ttls,
    # concurrency ceiling, circuit threshold, cool-downs, disable after, dead letters' ttl
    args = ["pfx", 25000, 65000, 10, 3_600_000, 10000, 604800, 100000, 691200]
    args += [50, 5, 30000, 600000, 432000000, 2_592_000_000]
    packed = Common(*args).packed()  # type: ignore[arg-type]
    names = [n.decode() for n in redis_client.eval(prelude + PROBE, 0, packed)]  # type: ignore[union-attr]
    k = ScriptKeys("pfx")
    assert names == [
        k.delivery("evt_1-abc"),
        k.body("evt_1"),
        k.rate("abc", 2),
        k.backlog("abc"),
        k.done("evt_1-abc"),
        k.dead("evt_1-abc"),
        k.stats(12),
        k.schedule,
        k.releases,
        k.urls,
        k.endpoints,
        k.watermark,
        k.log,
        k.dead_index,
        k.retrying,
        k.seq,
        k.watermark_history,
        k.totals,
        k.ops,
        k.health("abc"),
        k.in_flight("abc"),
        k.unknown,
        k.held("abc"),
    ]


def test_url_tags_are_stable_distinct_and_128_bits_wide() -> None:
    assert url_tag("https://a.example/hook") == url_tag("https://a.example/hook")
    expected = hashlib.sha256(b"https://a.example/hook").hexdigest()[:32]
    assert url_tag("https://a.example/hook") == expected
    assert delivery_id("evt_1", "https://a.example/hook") == f"evt_1-{expected}"
    assert url_tag("https://a.example/hook") != url_tag("https://a.example/hook2")


def test_the_function_library_loads_and_names_every_script(redis_client: redis.Redis) -> None:
    name, source = library()
    redis_client.execute_command("FUNCTION", "LOAD", "REPLACE", source)
    listed: Any = redis_client.function_list(name)
    libraries = [dict(zip(lib[::2], lib[1::2], strict=True)) for lib in listed]
    (found,) = [lib for lib in libraries if lib[b"library_name"] == name.encode()]
    functions = {dict(zip(f[::2], f[1::2], strict=True))[b"name"] for f in found[b"functions"]}
    assert functions == {f"{name}_{script}".encode() for script in SCRIPTS}
