"""Text that came from outside, made safe to show on a terminal.

A receiver's answer (its body, its `Location`), a request that reached `listen`, and what
the log and the dead letters hold of them were written by someone else. Printed raw, the
escape sequences in them act on the operator's terminal, piped or not: OSC 52 writes the
clipboard, OSC 8 plants links, OSC 0 sets the title, CSI moves the cursor or hides text.

`printable` shows each control character as an escape (`\\x1b`, `\\x9b`, `\\u202e`)
instead of dropping it, so what was sent stays readable: every C0 character (newline and
tab kept in multi-line text), DEL, every C1 character (0x80-0x9f: a lone 0x9b is a CSI
and 0x9d an OSC on some terminals), and the bidirectional controls that reorder what is
shown. The result has no escape sequence left, and escaping it again changes nothing.

JSON output needs none of this: `json.dumps` escapes control characters itself.
"""

from __future__ import annotations

import re

_BIDI = "\u200e\u200f\u202a-\u202e\u2066-\u2069"
_MULTI_LINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")  # keeps \t and \n
_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")


def printable(text: str, *, lines: bool = True) -> str:
    """`text` with every control character escaped; `lines=False` escapes newlines and
    tabs too (a table cell, a log line: one value must not fake another line)."""
    return (_MULTI_LINE if lines else _ONE_LINE).sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
