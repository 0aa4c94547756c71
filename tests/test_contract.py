"""The Python↔Lua contract holds on both sides: contract.py's names are the ones the Lua
reads (record fields, common arguments, each script's arguments)."""

from __future__ import annotations

import re
from importlib import resources

from shahihooks.contract import LAYOUTS, SCRIPTS, Common, Field, lua_arguments

LUA = resources.files("shahihooks").joinpath("lua")
PRELUDE = LUA.joinpath("prelude.lua").read_text()


def test_the_record_fields_are_the_prelude_fields_in_order() -> None:
    (listed,) = re.findall(r"^local FIELDS = \{(.*)\}$", PRELUDE, re.MULTILINE)
    assert re.findall(r"'(\w+)'", listed) == [f.value for f in Field]


def test_the_common_arguments_are_read_by_setup_in_their_order() -> None:
    (a,) = re.findall(r"^local A = (\d+)$", PRELUDE, re.MULTILINE)
    assert int(a) == len(Common._fields) + 1
    read = dict(re.findall(r"(\w+) = (?:tonumber\()?argv\[(\d+)\]", PRELUDE))
    assert {int(i): name for name, i in read.items()} == {
        i: name for i, name in enumerate(Common._fields[1:], start=2)
    }
    assert "P = argv[1]" in PRELUDE.replace("SETUP, P = common, argv[1]", "P = argv[1]")


def test_scripts_read_their_arguments_by_name_only() -> None:
    for name in SCRIPTS:
        body = LUA.joinpath(f"{name}.lua").read_text()
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
