"""maskviz's user-facing error: one line saying what, where, and how to fix."""

from __future__ import annotations

import re

# C0 and C1 control characters, DEL, and Unicode line/paragraph separators: anything that
# could end a line or drive a terminal (an OSC title escape, a NUL) when printed.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class MaskvizError(Exception):
    """A problem with the user's input (file, flags, model) that maskviz reports in
    one line and exit code 2, never as a traceback."""


def escape(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with control characters shown as escapes (``\\n``, ``\\x1b``, ``\\x00``);
    with `keep_newlines`, line feeds stay as they are."""

    def one(m: re.Match) -> str:
        c = m.group(0)
        if keep_newlines and c == "\n":
            return c
        special = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
        if c in special:
            return special[c]
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    return _CONTROL.sub(one, text)


def cut(text: str, limit: int = 120) -> str:
    """`text` escaped and, when longer than `limit`, cut in the middle with an ellipsis."""
    if len(text) > 4 * limit:  # escape only what is kept: names can be megabytes long
        text = text[: 2 * limit] + text[-2 * limit :]
        long = True
    else:
        long = False
    text = escape(text)
    if len(text) > limit or long:
        head = max(1, (limit - 1) * 2 // 3)
        tail = max(0, limit - 1 - head)
        text = text[:head] + "…" + (text[-tail:] if tail else "")
    return text
