"""How commands print: text made printable and coloured on a terminal, tables, or JSON."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from shahihooks.terminal import printable


def color_on() -> bool:
    """Colour on a terminal only, and never with NO_COLOR set (https://no-color.org)."""
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


_MARKS = {"✓": "green", "✗": "red", "↻": "yellow"}


def paint(text: str, header: bool = False) -> str:
    """`text` made printable (`terminal.printable`), then, on a terminal, its ✓, ✗ and ↻
    marks coloured and its first line bold if it is a `header`. Every text the commands
    print goes through here: styling comes after escaping, so only ours reaches a terminal."""
    text = printable(text)
    if not color_on():
        return text
    if header:
        first, newline, rest = text.partition("\n")
        text = click.style(first, bold=True) + newline + rest
    for mark, colour in _MARKS.items():
        text = text.replace(mark, click.style(mark, fg=colour, bold=True))
    return text


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str = "") -> str:
    """Rows under a header row, in columns (the last one not padded); a cell is one line
    (its newlines and control characters escaped). Print it with `paint(..., header=True)`."""
    if not rows and empty:
        return empty
    cells = [[printable(str(c), lines=False) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in cells
    ]
    return "\n".join(lines)


def print_result(payload: Any, as_json: bool, text: str, header: bool = False) -> None:
    """JSON exactly (json.dumps escapes control characters), or the text `paint`ed."""
    click.echo(json.dumps(payload, indent=2, default=str) if as_json else paint(text, header))
