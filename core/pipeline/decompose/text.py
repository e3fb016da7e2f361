"""Decoded text of text parts: charset decoding (charsets.py: as mail readers read the label)
and HTML reduced to its text (for content and spam rules, SPEC §3 rules.spam: "HTML reduced
to its text"), read as a reader sees it: without the characters that draw nothing, look-alike
letters of mixed-script words as Latin. `html_texts` also gives the text without what inline
CSS hides (hidden.py), a second reading for the rules only: the heuristic engine's tokens
read the first, which its model was trained on."""

from __future__ import annotations

import html
import re

from core.pipeline.decompose import charsets
from core.pipeline.decompose.hidden import without_hidden

__all__ = ["decode_text", "html_to_text", "html_texts", "as_read", "unflow"]

# Every pattern below scans a tag only up to the next "<" ([^<>]*, not [^>]*): unclosed
# tags ("<a <a <a ...", 150 KB) made each "<" scan to the end of the part, quadratic time
# that held a worker past its limit. Elements and comments are found by `_drop_elements`
# and `_drop_comments`, which look for each end once.
_DROP_START = re.compile(r"<(script|style|title)\b", re.IGNORECASE)
_DROP_END = {name: re.compile(f"</{name}", re.IGNORECASE)
             for name in ("script", "style", "title")}
_BREAK = re.compile(r"<\s*(br|/p|/div|/tr|/li|/h\d)\b[^<>]*>", re.IGNORECASE)
# Tags a browser lays out apart from the text beside them (blocks, table cells, images,
# form fields): a space. Every other tag — inline formatting, links, unknown tags — and every
# comment is nothing, as on screen: "v<span>iag</span>ra" and "via<!-- x -->gra" read
# "viagra", a spammer's oldest way around word filters.
_SEPARATING_NAMES = frozenset((
    "address area article aside blockquote body br button caption center col colgroup dd "
    "details dialog dir div dl dt embed fieldset figcaption figure footer form frame frameset "
    "h1 h2 h3 h4 h5 h6 header hr html iframe img input isindex legend li link main marquee "
    "menu meta nav noframes object ol optgroup option p pre section select summary table tbody "
    "td textarea tfoot th thead title tr ul video audio canvas svg").split())
# The name is looked up in a set, not matched by an alternation of the names: the
# alternation, tried at every "<", cost about 1 s a megabyte of "<<<<" (hostile18 A1: a
# part of them held a worker past its limit).
_SEPARATING = re.compile(r"<\s*/?\s*([A-Za-z][A-Za-z0-9]*)\b[^<>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")     # "a < b" is text
_SPACES = re.compile(r"[ \t\r\f\v]+")
# Unicode format and filler characters a mail reader draws as nothing: zero-width spaces and
# joiners, soft hyphens (&shy;), direction marks, variation selectors, BOMs, tag characters.
# Spam and leaks put them inside a word ("pro&#8203;ject") to get past a rule's term or a
# token; a part's text is read without them.
_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
                        "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f"
                        "\ufeff\uffa0\U000e0000-\U000e0fff]+")
# Cyrillic and Greek letters drawn like Latin ones. A word that mixes them with Latin letters
# ("p\u0430yp\u0430l" with Cyrillic a) is a disguise — no language writes so — and reads as
# the Latin word; a word all in Cyrillic or Greek is left as it is (Russian and Greek text).
_LOOKALIKES = str.maketrans(
    "\u0430\u0432\u0435\u043a\u043c\u043d\u043e\u0440\u0441\u0442\u0443\u0445"
    "\u0455\u0456\u0458\u0501\u04bb\u051b\u051d\u04cf"
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0423\u0425"
    "\u0405\u0406\u0408\u051a\u051c"
    "\u03b1\u03b9\u03ba\u03bd\u03bf\u03c1\u03c5"
    "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4"
    "\u03a5\u03a7",
    "aBeKMHopcTyx"
    "sijdhqwl"
    "ABEKMHOPCTYX"
    "SIJQW"
    "aikvopu"
    "ABEZHIKMNOPT"
    "YX")
_LOOKALIKE = re.compile("[" + "".join(chr(c) for c in _LOOKALIKES) + "]")
_LATIN = re.compile("[A-Za-z]")
_WORD = re.compile(r"\w+")


def _latin_if_mixed(word: re.Match) -> str:
    text = word.group()
    if _LOOKALIKE.search(text) and _LATIN.search(text):
        return text.translate(_LOOKALIKES)
    return text


def as_read(text: str) -> str:
    """`text` as a reader sees it: without the characters that draw nothing (_INVISIBLE), and
    with the look-alike letters of a mixed-script word read as Latin (_LOOKALIKES). Linear:
    each word is looked at once, and only in text that has a look-alike letter at all."""
    text = _INVISIBLE.sub("", text)
    if _LOOKALIKE.search(text) is None:
        return text
    return _WORD.sub(_latin_if_mixed, text)


_LINE_BREAK = re.compile(r"\r?\n")
_QUOTES = re.compile(r">*")


def unflow(text: str, delsp: bool) -> str:
    """format=flowed text (RFC 3676 §4) as a reader shows it: a line ending in a space is
    joined to the next one of the same quote depth, without that space under DelSp=yes
    ("proj " + "ect" reads "project"), and space-stuffing is undone; "-- " stays a line.
    Linear in the text."""
    paragraphs: list[str] = []
    pieces: list[str] = []          # the lines of the paragraph being joined
    depth = 0

    def end_paragraph() -> None:
        paragraphs.append(">" * depth + " " * bool(depth) + "".join(pieces))
        pieces.clear()

    for line in _LINE_BREAK.split(text):
        quotes = _QUOTES.match(line).end()
        content = line[quotes:]
        if content.startswith(" "):
            content = content[1:]
        if pieces and quotes != depth:          # a quote depth change ends a paragraph
            end_paragraph()
        depth = quotes
        soft = content.endswith(" ") and content != "-- "
        pieces.append(content[:-1] if soft and delsp else content)
        if not soft:
            end_paragraph()
    if pieces:
        end_paragraph()
    return "\n".join(paragraphs)


def decode_text(data: bytes, charset: str | None, *,
                is_html: bool = False) -> tuple[str, str | None]:
    """(text, defect): `data` read as mail readers read text labelled `charset`
    (charsets.decode_as_read). No charset is US-ASCII (RFC 2045 §5.2), or for HTML
    (`is_html`) the charset its <meta> declares, which browsers and webmail decode by.
    Never raises."""
    if charset is None and is_html:
        charset = charsets.html_charset(data)
    return charsets.decode_as_read(data, charset)


def _drop_comments(markup: str) -> str:
    """Comments removed as HTML5 reads them: "<!-->" and "<!--->" are empty comments, and
    one never closed runs to the end (linear: each end is looked for once)."""
    out, at = [], 0
    while (start := markup.find("<!--", at)) >= 0:
        out.append(markup[at:start])
        body = start + 4
        if markup.startswith(">", body):
            at = body + 1
        elif markup.startswith("->", body):
            at = body + 2
        else:
            end = markup.find("-->", body)
            at = len(markup) if end < 0 else end + 3
    out.append(markup[at:])
    return "".join(out)


def _drop_elements(markup: str) -> str:
    """script, style and title elements removed (a space in their place): the text a
    reader does not see. The rest of a head holds no text (meta, link, base), and text put
    in a head is shown: a browser starts the body at it. An element never closed runs to the
    end, as in a browser."""
    out, at = [], 0
    while (found := _DROP_START.search(markup, at)) is not None:
        out.append(markup[at:found.start()])
        out.append(" ")
        end = _DROP_END[found.group(1).lower()].search(markup, found.end())
        close = -1 if end is None else markup.find(">", end.end())
        at = len(markup) if close < 0 else close + 1
    out.append(markup[at:])
    return "".join(out)


def html_to_text(markup: str) -> str:
    return _reduced(_drop_comments(_drop_elements(markup)))


def html_texts(markup: str) -> tuple[str, str | None]:
    """(the text of `markup`, as html_to_text; the text without the elements inline CSS
    or the `hidden` attribute hides, or None when it hides none: hidden.py)."""
    raw = _drop_comments(_drop_elements(markup))
    shown = without_hidden(raw)
    return _reduced(raw), None if shown is None else _reduced(shown)


def _separated(tag: re.Match) -> str:
    """A space for a tag of `_SEPARATING_NAMES`, any other tag as it is (`_TAG`'s)."""
    return " " if tag.group(1).casefold() in _SEPARATING_NAMES else tag.group(0)


def _reduced(raw: str) -> str:
    """Markup without comments, script, style and title, reduced to its text."""
    raw = _BREAK.sub("\n", raw)
    raw = _SEPARATING.sub(_separated, raw)
    raw = _TAG.sub("", raw)
    return _SPACES.sub(" ", html.unescape(raw))
