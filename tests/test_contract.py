"""The Python↔Lua contract holds on both sides: contract.py's names are the ones the Lua
reads (record fields and stages, health fields, common arguments, each script's arguments)."""

from __future__ import annotations

import re
from importlib import resources

from shahihooks import health, logline
from shahihooks.contract import (
    LAYOUTS,
    SCRIPTS,
    Common,
    Field,
    HealthField,
    Stage,
    lua_arguments,
)
from shahihooks.overview import cells_from_hash

LUA = resources.files("shahihooks").joinpath("lua")
PRELUDE = LUA.joinpath("prelude.lua").read_text()
BODIES = {name: LUA.joinpath(f"{name}.lua").read_text() for name in SCRIPTS}


def _lua_table(name: str) -> list[tuple[str, str]]:
    """The prelude's `local <name> = {a = 'x', ...}`: its (name, stored) pairs in order."""
    (listed,) = re.findall(rf"^local {name} = \{{(.*?)^\}}$", PRELUDE, re.MULTILINE | re.DOTALL)
    pairs: list[tuple[str, str]] = re.findall(r"(\w+) = '(\w*)'", listed)
    assert re.sub(r"(\w+) = '(\w*)',", "", listed).strip() == "", name  # nothing else in it
    return pairs


def _named(enum: type[Field] | type[Stage] | type[HealthField]) -> list[tuple[str, str]]:
    return [(member.name.lower(), member.value) for member in enum]


def test_the_lua_names_the_record_fields_as_contract_field_does() -> None:
    assert _lua_table("F") == _named(Field)
    (read,) = re.findall(r"^local NAMES = \{(.*?)\}$", PRELUDE, re.MULTILINE | re.DOTALL)
    assert re.findall(r"'(\w+)'", read) == [f.name.lower() for f in Field]  # all, in order
    built = PRELUDE.split("local function record(id)", 1)[1].split("\nend\n", 1)[0]
    assert re.findall(r"(\w+) = v\[(\d+)\]", built) == [
        (f.name.lower(), str(i)) for i, f in enumerate(Field, start=1)
    ]  # record() reads the reply by NAMES' order


def test_the_lua_names_the_stages_as_contract_stage_does() -> None:
    assert _lua_table("STAGE") == _named(Stage)


def test_the_lua_names_the_health_fields_as_contract_health_field_does() -> None:
    assert _lua_table("HF") == _named(HealthField)


def test_the_lua_reads_and_writes_record_and_health_fields_by_name() -> None:
    lua = "\n".join([PRELUDE, *BODIES.values()])
    # a field of `d` (a record) or `h` (a health) is one of the names, never a stored letter
    assert set(re.findall(r"\bd\.(\w+)", lua)) <= {f.name.lower() for f in Field}
    assert {"url_tag", "stage", "token"} <= set(re.findall(r"\bd\.(\w+)", lua))
    assert set(re.findall(r"\bF\.(\w+)", lua)) <= {f.name.lower() for f in Field}
    assert set(re.findall(r"\bh\.(\w+)", lua)) <= {f.name.lower() for f in HealthField}
    assert set(re.findall(r"\bSTAGE\.(\w+)", lua)) <= {s.name.lower() for s in Stage}
    assert set(re.findall(r"\bHF\.(\w+)", lua)) <= {f.name.lower() for f in HealthField}


def test_no_script_argument_hides_a_name_of_the_prelude() -> None:
    declared = re.findall(r"^local (?:function )?([\w, ]+?)\s*(?:=|\(|--|$)", PRELUDE, re.MULTILINE)
    names = {n.strip() for found in declared for n in found.split(",")}
    assert {"F", "STAGE", "HF", "record", "shown_url", "key", "C", "K"} <= names
    for script, layout in LAYOUTS.items():
        assert not names & set(layout.args._fields), script


def test_the_initial_limit_is_the_same_on_both_sides() -> None:
    (lua,) = re.findall(r"^local INITIAL_LIMIT = (\d+)$", PRELUDE, re.MULTILINE)
    assert int(lua) == health.INITIAL_LIMIT


def test_the_common_arguments_are_read_by_setup_in_their_order() -> None:
    (a,) = re.findall(r"^local A = (\d+)$", PRELUDE, re.MULTILINE)
    assert int(a) == 2  # ARGV[1]: Common.packed()
    read = dict(re.findall(r"(\w+) = (?:tonumber\()?common\[(\d+)\]", PRELUDE))
    assert read.pop("P") == "1"
    assert {int(i): name for name, i in read.items()} == {
        i: name for i, name in enumerate(Common._fields[1:], start=2)
    }
    assert Common("p", *range(1, 15)).packed().split("\0") == ["p", *map(str, range(1, 15))]


def test_scripts_read_their_arguments_by_name_only() -> None:
    for name, body in BODIES.items():
        assert "ARGV[A" not in body, name
        assert f"contract.{LAYOUTS[name].args.__name__}" in body, name


def test_the_declared_locals_follow_the_layout() -> None:
    assert lua_arguments(LAYOUTS["begin"]) == (
        "local delivery_id, token = ARGV[A], ARGV[A + 1]\nlocal REST = A + 2"
    )
    emit = lua_arguments(LAYOUTS["emit"])
    assert "local REST = A + 12" in emit
    assert "local TARGET_STRIDE = 7" in emit
    assert "delivery_id = ARGV[at], url_tag = ARGV[at + 1]" in emit


def test_the_lua_writes_log_entries_and_stats_fields_as_logline_names_them() -> None:
    (stat,) = re.findall(r"^local STAT = \{(.*)\}$", PRELUDE, re.MULTILINE)
    assert dict(re.findall(r"(\w+) = '(\w+)'", stat)) == {
        "count": logline.COUNT,
        "ok": logline.OK,
        "ms": logline.MS,
        "deferred": logline.DEFERRED,
    }
    written = PRELUDE.split("local function log_event", 1)[1].split("\nend\n", 1)[0]
    assert re.findall(r"'([a-z_]+)', ", written.split("'*',", 1)[1]) == list(logline.LOG_FIELDS)


def test_a_stats_field_is_read_back_whatever_its_url_holds() -> None:
    field = logline.stats_prefix("https://a.example/x y", "order.paid") + logline.COUNT
    assert logline.stats_field(field) == ("https://a.example/x y", "order.paid", "n")
    assert logline.stats_field("no-spaces") is None


def test_attempts_are_read_from_stats_written_before_and_after_the_count_went() -> None:
    before = {
        "https://a.example/ e n": 3,
        "https://a.example/ e le10": 2,
        "https://a.example/ e inf": 1,
    }
    after = {"https://a.example/ e le10": 4, "https://a.example/ e ok": 4}
    both = {"https://a.example/ e n": 1, "https://a.example/ e le10": 3}  # one hour, two versions
    for raw, attempts in ((before, 3), (after, 4), (both, 3)):
        (cell,) = cells_from_hash(raw).values()
        assert cell.n == attempts
    assert logline.attempts(0, {"le10": 2, "inf": 1}) == 3


def test_an_entry_has_the_log_fields_in_order() -> None:
    row = logline.entry(
        delivery_id="evt_1-a",
        url="https://a.example/",
        event="e",
        attempt=2,
        outcome="retry",
        status="503",
        ms=12,
        error="HTTP 503",
        next_s="30",
    )
    assert tuple(row) == logline.LOG_FIELDS
    assert logline.typed(row)["attempt"] == 2
    assert logline.error_text(row) == "HTTP 503 (retry in 30 s)"
