"""How a setting's value is read from what a user wrote: a string from the environment, or a
Python value from a Django dict or a Flask config.

Each reader returns the value or raises ValueError saying what is wrong with it; settings.py
names the setting in the error it raises.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from shahihooks.bodystyle import BodyStyle, body_style
from shahihooks.errors import ConfigurationError, EventError
from shahihooks.events import check_name
from shahihooks.safety import Network

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError("expected 1/0, true/false, yes/no or on/off")


def words(raw: Any, sep: str = r"[\s,]+") -> tuple[str, ...]:
    if isinstance(raw, str):
        return tuple(w for w in re.split(sep, raw.strip()) if w)
    return tuple(str(w).strip() for w in raw if str(w).strip())


def urls(raw: Any) -> tuple[str, ...]:
    return words(raw, r"\s+")


def events(raw: Any) -> tuple[str, ...] | None:
    names = words(raw)
    if not names or names == ("*",):
        return None
    for name in names:
        try:
            check_name(name)
        except EventError as exc:
            raise ValueError(str(exc)) from None
    return names


def count(raw: Any) -> int:
    value = int(str(raw).strip())
    if value < 0:
        raise ValueError("must not be negative")
    return value


def positive_int(raw: Any) -> int:
    value = count(raw)
    if value == 0:
        raise ValueError("must be positive")
    return value


def seconds(raw: Any) -> float:
    value = float(str(raw).strip())
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def schedule(raw: Any) -> tuple[float, ...]:
    items = words(raw, r"[\s,]+") if isinstance(raw, str) else tuple(raw)
    out = []
    for item in items:
        try:
            value = float(str(item).strip())
        except ValueError:
            raise ValueError(f"{item!r} is not a number of seconds") from None
        if value < 0 or value != value or value == float("inf"):
            raise ValueError(f"{item!r} is not a non-negative number of seconds")
        out.append(value)
    return tuple(out)


def networks(raw: Any) -> tuple[Network, ...]:
    out = []
    for item in words(raw):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not a CIDR network such as 127.0.0.0/8") from None
    return tuple(out)


def secret(raw: Any) -> str | None:
    text = str(raw).strip()
    return text or None


def text(raw: Any) -> str:
    return str(raw).strip()


def style(raw: Any) -> BodyStyle:
    try:
        return body_style(raw)
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None


def user_password(raw: Any) -> str:
    text = str(raw).strip()
    if text and (":" not in text or text.startswith(":") or text.endswith(":")):
        raise ValueError("must be user:password (a user, ':', then a password)")
    return text
