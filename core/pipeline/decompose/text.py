"""Decoded text of text parts: charset decoding and HTML reduced to its text (for content
and spam rules, SPEC §3 rules.spam: "HTML reduced to its text")."""

from __future__ import annotations

import codecs
import html
import re

__all__ = ["decode_text", "html_to_text"]

_DROP = re.compile(rb"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"<\s*(br|/p|/div|/tr|/li|/h\d)\b[^>]*>", re.IGNORECASE)
# Tags a browser lays out apart from the text beside them (blocks, table cells, images,
# form fields): a space. Every other tag — inline formatting, links, unknown tags — and every
# comment is nothing, as on screen: "v<span>iag</span>ra" and "via<!-- x -->gra" read
# "viagra", a spammer's oldest way around word filters.
_SEPARATING = re.compile(
    r"<\s*/?\s*(?:address|area|article|aside|blockquote|body|br|button|caption|center|col|"
    r"colgroup|dd|details|dialog|dir|div|dl|dt|embed|fieldset|figcaption|figure|footer|form|"
    r"frame|frameset|h[1-6]|header|hr|html|iframe|img|input|isindex|legend|li|link|main|"
    r"marquee|menu|meta|nav|noframes|object|ol|optgroup|option|p|pre|section|select|summary|"
    r"table|tbody|td|textarea|tfoot|th|thead|title|tr|ul|video|audio|canvas|svg)\b[^>]*>",
    re.IGNORECASE)
_TAG = re.compile(r"<[A-Za-z/!?][^>]*>", re.DOTALL)     # "a < b" is text
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_SPACES = re.compile(r"[ \t\r\f\v]+")


def decode_text(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """(text, defect). Unknown charsets fall back to UTF-8, then Latin-1; never raises."""
    name = (charset or "us-ascii").strip().strip('"').lower()
    try:
        codecs.lookup(name)
    except LookupError:
        text, _ = decode_text(data, "utf-8")
        return text, f"unknown charset {name!r}"
    if name in ("us-ascii", "ascii", "utf-8", "utf8"):
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError:
            return data.decode("latin-1"), None if name != "utf-8" else "invalid UTF-8"
    try:
        return data.decode(name, errors="replace"), None
    except Exception:                       # codecs with odd failure modes (utf-7, ...)
        return data.decode("latin-1"), f"cannot decode charset {name!r}"


def html_to_text(markup: str) -> str:
    raw = _DROP.sub(b" ", markup.encode("utf-8", "surrogatepass")).decode("utf-8", "replace")
    raw = _COMMENT.sub("", raw)
    raw = _BREAK.sub("\n", raw)
    raw = _SEPARATING.sub(" ", raw)
    raw = _TAG.sub("", raw)
    return _SPACES.sub(" ", html.unescape(raw))
