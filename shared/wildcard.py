"""`*` and `?` wildcard patterns, case-insensitive, with `\\` escapes (SPEC §3).

One matcher for every setting that takes such patterns: routing.local matches, subject lines,
file names, blacklist local parts, relay host patterns and content/spam rule terms. A pattern
matches the WHOLE text (so `*hot*` matches anywhere and `hot` only "hot"); `find` is the
"anywhere in the text" form that rule terms use.
"""

from __future__ import annotations

import functools
import re

__all__ = ["compile_pattern", "matches", "find"]


@functools.lru_cache(maxsize=4096)
def _translate(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str, whole: bool = True) -> re.Pattern:
    body = _translate(pattern)
    return re.compile(rf"\A(?:{body})\Z" if whole else body, re.IGNORECASE | re.DOTALL)


def matches(pattern: str, text: str) -> bool:
    """True when `pattern` matches all of `text`."""
    return compile_pattern(pattern, True).match(text) is not None


def find(pattern: str, text: str) -> bool:
    """True when `pattern` matches somewhere in `text`."""
    return compile_pattern(pattern, False).search(text) is not None
