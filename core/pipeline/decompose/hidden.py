"""HTML a reader is not shown: elements hidden by their inline CSS or the `hidden` attribute
(for content and spam rules; text.py `html_texts`).

"vi<span style='display:none'>zz</span>agra" shows "viagra" and read "vizzagra" past the
term `viagra` (antispam adversary B1). `without_hidden` gives the markup with such elements
left out, or None when nothing in it is hidden, so a part keeps one text unless it hides
some. The rules read that reading beside the whole text, never instead of it: a style
sheet can show again what an inline style hides (`.x {display: block !important}`), so
leaving hidden text out of everything the rules read would make a new way past them.

Rules
    1. Hidden, with all it holds: `display: none` in the element's style, or the `hidden`
       attribute while the style sets no other display. Nothing of it is on screen, its
       tags included (a hidden block breaks no line).
    2. Hidden text: `visibility: hidden | collapse` and a zero font size (`font-size: 0`,
       any unit, or a zero size in the `font` shorthand). The boxes stay (the tags are
       kept), the text goes; a descendant may show its own text again (a `visibility` or
       font size of its own, `<font size>`), so the hidden text ends at the first such tag.
    3. An element ends at its end tag, same-name elements inside counted; one whose end tag
       HTML lets a writer leave out (p, li, td, ...) at the next tag of its name; one never
       closed runs to the end (a browser ends it with its parent; what this reading leaves
       out too many, the whole text the rules also read still has). Style values are read as a browser reads
       them: character references decoded, CSS comments dropped, case ignored, the last
       declaration of a property winning.
    4. Linear in the markup: tags are found by regular expressions that stop at the next
       "<" (text.py's rule); only tags that name a hint ("none", "hidden", "collapse",
       "font") are read in Python; where every element ends is found in one pass over the
       tags, the first time a hiding tag needs it (`_ElementEnds`), and what follows a
       hidden stretch is read once. Walking the tags from each hiding one to its end was
       quadratic in the number of hiding tags left open (regression hunt: 250 KB of them
       held a worker past 60 s three times).
"""

from __future__ import annotations

import html
import re

__all__ = ["without_hidden"]

# A start tag whose attributes may hide it (rule 4); they are read after. The lookahead
# makes sure of the ">" first, and nothing gives back what it read (possessive): else a tag
# never closed would have each hint word, or each shorter name, tried against the rest of
# the tag, quadratic time.
_CANDIDATE = re.compile(r"<([A-Za-z][A-Za-z0-9:-]*+)(?=[^<>]*+>)(\s[^<>]*?"
                        r"(?:none|hidden|collapse|font)[^<>]*+)>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""([^\s"'<>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'<>`]+))?""")
_ZERO_LENGTH = re.compile(r"[+-]?(?:0+(?:\.0*)?|\.0+)(?:[a-z]+|%)?")
_ANY_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")
_NAMED_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*+)(?=[\s/>])[^<>]*>")
# Rule 2: a tag below a hiding one that may show its text again
_SHOWING = re.compile(r"<[A-Za-z](?=[^<>]*+>)[^<>]*?(?:visibility|font)[^<>]*+>",
                      re.IGNORECASE)
# Elements without content (HTML "void elements"): hiding one hides no text after it
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "keygen",
                   "link", "meta", "param", "source", "track", "wbr"})
# Elements whose end tag may be left out: the next tag of the name ends them (rule 3)
_END_OPTIONAL = frozenset({"p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th",
                           "thead", "tbody", "tfoot", "colgroup", "caption", "rb", "rt",
                           "rtc", "rp"})

GONE, TEXT_HIDDEN = "gone", "text hidden"


def without_hidden(markup: str) -> str | None:
    """`markup` (comments, script and style already dropped) without what rules 1 and 2
    hide, or None when it hides nothing. Never raises."""
    out: list[str] = []
    at = 0
    search = 0
    ends: _ElementEnds | None = None
    while (tag := _CANDIDATE.search(markup, search)) is not None:
        search = tag.end()
        name = tag.group(1).lower()
        kind = _hiding(tag.group(2), name)
        if kind is None:
            continue
        if name in _VOID:
            end = tag.end()
        else:
            ends = ends or _ElementEnds(markup)
            end = ends.of(tag.end())
        out.append(markup[at:tag.start()])
        if kind == GONE:
            at = search = end
            continue
        shown_again = _SHOWING.search(markup, tag.end(), end)
        if shown_again is not None:
            end = shown_again.start()
        out.append(markup[tag.start():tag.end()])
        out.extend(_ANY_TAG.findall(markup, tag.end(), end))
        at = search = end
    if not out:
        return None
    out.append(markup[at:])
    return "".join(out)


def _hiding(attributes: str, name: str) -> str | None:
    """GONE (rule 1), TEXT_HIDDEN (rule 2) or None for a start tag's attribute text."""
    style, hidden = "", False
    for found in _ATTRIBUTE.finditer(attributes):
        attribute = found.group(1).lower()
        if attribute == "style" and not style:          # the first one counts, as in HTML
            style = (found.group(2) or "").strip("\"'") or " "
        elif attribute == "hidden":
            hidden = True
    declared = _declarations(style) if style else {}
    display = declared.get("display")
    if display == "none" or (hidden and display is None):
        return GONE
    if declared.get("visibility") in ("hidden", "collapse"):
        return TEXT_HIDDEN
    size = declared.get("font-size")
    if size is not None and _ZERO_LENGTH.fullmatch(size):
        return TEXT_HIDDEN
    font = declared.get("font")
    if font is not None and any(
            _ZERO_LENGTH.fullmatch(word.split("/", 1)[0]) for word in font.split()):
        return TEXT_HIDDEN
    return None


def _declarations(style: str) -> dict[str, str]:
    """An inline style's declarations, property -> value, as a browser reads them (rule 3):
    the first word of display and visibility, the whole value of the others."""
    out: dict[str, str] = {}
    for declaration in _without_comments(html.unescape(style).lower()).split(";"):
        prop, colon, value = declaration.partition(":")
        if not colon:
            continue
        prop, value = prop.strip(), value.replace("!important", " ").strip()
        if prop in ("display", "visibility"):
            value = (value.split() or [""])[0]
        elif prop == "font":
            out.pop("font-size", None)      # the shorthand sets the size again...
        elif prop == "font-size":
            out.pop("font", None)           # ...and a later font-size the shorthand's
        out[prop] = value
    return out


def _without_comments(css: str) -> str:
    """CSS comments removed; one never closed runs to the end (linear: each end is looked
    for once)."""
    out, at = [], 0
    while (start := css.find("/*", at)) >= 0:
        out.append(css[at:start])
        end = css.find("*/", start + 2)
        at = len(css) if end < 0 else end + 2
    out.append(css[at:])
    return " ".join(out)


class _ElementEnds:
    """Where each element of `markup` ends (rule 3), found in one pass over its tags: after
    its end tag, same-name elements inside counted; before the next tag of its name for an
    element whose end tag may be left out; else at the end of the markup. One expression for
    every name (one compiled per name would let a message of many made-up names cost a
    compile each)."""

    def __init__(self, markup: str) -> None:
        self.length = len(markup)
        self.ends: dict[int, int] = {}          # where a start tag ends -> its element's end
        open_elements: dict[str, list[int]] = {}
        open_optional: dict[str, int] = {}
        for tag in _NAMED_TAG.finditer(markup):
            name, closing = tag.group(2).lower(), bool(tag.group(1))
            if name in _END_OPTIONAL:
                started = open_optional.pop(name, None)
                if started is not None:
                    self.ends[started] = tag.end() if closing else tag.start()
                if not closing:
                    open_optional[name] = tag.end()
            elif closing:
                if open_elements.get(name):
                    self.ends[open_elements[name].pop()] = tag.end()
            else:
                open_elements.setdefault(name, []).append(tag.end())

    def of(self, start_tag_end: int) -> int:
        """The end of the element whose start tag ends at `start_tag_end`."""
        return self.ends.get(start_tag_end, self.length)
