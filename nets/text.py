"""Safe text for one-line messages: long values cut, control characters escaped.

A user's value is echoed back in error lines. A 100,000-character value must not fill
the terminal, an escape sequence must not recolour it, and a line read from a file
must not be quoted whole (it may be someone's ``/etc/passwd``). Plain standard library
only: every layer (data readers, registries, the CLIs) uses it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# Longer than this, a value is cut in messages (the repr keeps its quotes).
MAX_VALUE = 120
# A run of non-blank characters longer than this is cut in the middle of a message.
MAX_TOKEN = 200
# Bidirectional overrides and isolates reorder what a terminal shows.
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
_LONG_TOKEN = re.compile(r"\S{%d,}" % (MAX_TOKEN + 1))


def escape(text: str) -> str:
    """``text`` with control, line-separator and bidi characters written as ``\\xNN``/
    ``\\uNNNN`` escapes, so it prints as one inert line."""
    out = []
    for ch in str(text):
        if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def cut(text: str, limit: int = MAX_VALUE) -> str:
    """``text`` itself if short, else its first ``limit`` characters and how long it was."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text)} characters)"


def show(value: Any, limit: int = MAX_VALUE) -> str:
    """``repr(value)``, cut to about ``limit`` characters and escaped: for ``key=value``."""
    r = repr(value)
    if len(r) > limit + 2:
        quote = r[0] if r[:1] in "'\"" else ""
        r = f"{r[:limit + 1]}…{quote} ({len(str(value))} characters)"
    return escape(r)


def one_line(text: str) -> str:
    """A message made safe to print: escaped, newlines joined, very long tokens cut in
    the middle (their start and end kept: a path's file name stays readable)."""
    text = " ".join(ln.strip() for ln in str(text).split("\n") if ln.strip())

    def shorten(m: re.Match) -> str:
        s = m.group(0)
        return f"{s[:120]}…({len(s)} characters)…{s[-40:]}"

    return escape(_LONG_TOKEN.sub(shorten, text))
