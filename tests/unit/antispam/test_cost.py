"""The heuristic engine's patterns cost time linear in their text (tester x4, findings 7-11).

A backtracking pattern is quadratic when one match attempt can scan to the end of a long run
and the attempts start at every position of that run, or when two unbounded repeats in one
attempt can split the same run in many ways. These tests read the parsed patterns
(`re._parser`) for those shapes instead of timing them, so a loaded machine cannot make them
flaky; beside them, each changed pattern is shown to find what the old one found on text
that mail really contains.
"""

from __future__ import annotations

import ast
import json
import re
import re._constants as C
import re._parser as sre_parse
from pathlib import Path

import pytest

import core.scan.antispam.tokenizer as tokenizer
from core.scan.antispam import structure
from core.scan.antispam.heuristic_rules import RuleSet
from core.scan.antispam.training import view_of

RULES_JSON = Path(tokenizer.__file__).parent / "data" / "spam" / "rules.json"
RULES = RuleSet.from_json(json.loads(RULES_JSON.read_text())).rules

_CATEGORY = {C.CATEGORY_SPACE: r"\s", C.CATEGORY_NOT_SPACE: r"\S", C.CATEGORY_DIGIT: r"\d",
             C.CATEGORY_NOT_DIGIT: r"\D", C.CATEGORY_WORD: r"\w", C.CATEGORY_NOT_WORD: r"\W"}
_REPEATS = (C.MAX_REPEAT, C.MIN_REPEAT)          # repeats that give characters back


def _can_match(nodes, ch: str, dotall: bool = False) -> bool:
    """Whether some single-character item of `nodes` (a parsed subpattern) matches `ch`."""
    for op, av in nodes:
        if op is C.LITERAL and chr(av) == ch or op is C.NOT_LITERAL and chr(av) != ch:
            return True
        if op is C.ANY and (dotall or ch != "\n"):
            return True
        if op is C.IN:
            negate = any(o is C.NEGATE for o, _ in av)
            hit = any(o is C.LITERAL and chr(a) == ch
                      or o is C.RANGE and a[0] <= ord(ch) <= a[1]
                      or o is C.CATEGORY and re.match(_CATEGORY[a], ch) is not None
                      for o, a in av)
            if hit != negate:
                return True
        if op in _REPEATS or op is C.POSSESSIVE_REPEAT:
            if _can_match(av[2], ch, dotall):
                return True
        elif op is C.SUBPATTERN and _can_match(av[3], ch, dotall):
            return True
        elif op is C.BRANCH and any(_can_match(b, ch, dotall) for b in av[1]):
            return True
    return False


def _unbounded(op, av) -> bool:
    return op in _REPEATS and av[1] == C.MAXREPEAT


def _sequences(nodes):
    """Every sequence of the parsed pattern (the pattern, groups, alternatives, bodies)."""
    yield list(nodes)
    for op, av in nodes:
        if op is C.SUBPATTERN:
            yield from _sequences(av[3])
        elif op is C.BRANCH:
            for branch in av[1]:
                yield from _sequences(branch)
        elif op in _REPEATS or op is C.POSSESSIVE_REPEAT:
            yield from _sequences(av[2])
        elif op in (C.ASSERT, C.ASSERT_NOT):
            yield from _sequences(av[1])
        elif op is C.ATOMIC_GROUP:
            yield from _sequences(av)


def _letter_repeats(nodes, dotall: bool, top: bool = True) -> list[int]:
    """How many backtracking unbounded repeats that match a letter one match attempt holds at
    once, per scope: the pattern, and each lookaround or atomic group (which keep only their
    first success, so they are scopes of their own). A repeat that ends the pattern gives
    nothing back and is not counted."""
    counts, own = [], 0
    items = list(nodes)
    if top:
        while items and items[-1][0] is C.SUBPATTERN:
            items = items[:-1] + list(items[-1][1][3])
        if items and items[-1][0] in _REPEATS:
            items = items[:-1]

    def walk(seq):
        nonlocal own
        for op, av in seq:
            if op in _REPEATS:
                if av[1] == C.MAXREPEAT and _can_match(av[2], "a", dotall):
                    own += 1
                walk(av[2])
            elif op is C.SUBPATTERN:
                walk(av[3])
            elif op is C.BRANCH:
                for branch in av[1]:
                    walk(branch)
            elif op in (C.ASSERT, C.ASSERT_NOT):
                counts.extend(_letter_repeats(av[1], dotall, top=False))
            elif op is C.ATOMIC_GROUP:
                counts.extend(_letter_repeats(av, dotall, top=False))
            elif op is C.POSSESSIVE_REPEAT:
                counts.extend(_letter_repeats(av[2], dotall, top=False))

    walk(items)
    return [own] + counts


def _starts_inside_runs(pattern: str) -> bool:
    """The alternatives of a searched pattern that begin with an unbounded repeat and go on
    after it without a look-behind that keeps the attempts to the start of the run: each
    position of a long run then scans the rest of the run again."""
    parsed = sre_parse.parse(pattern)
    branches = parsed.data[0][1][1] if len(parsed.data) == 1 and parsed.data[0][0] is C.BRANCH \
        else [parsed.data]
    for branch in branches:
        items = list(branch)
        while items and items[0][0] is C.SUBPATTERN:
            items = list(items[0][1][3]) + items[1:]
        if len(items) > 1 and _unbounded(*items[0]):
            return True
    return False


def _searched_patterns(module) -> dict[str, str]:
    """Every pattern `module` passes to a `.search`: a `re.search` literal or a module-level
    compiled pattern."""
    found = {}
    for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "search" and isinstance(node.func.value, ast.Name)):
            continue
        name = node.func.value.id
        if name == "re" and node.args and isinstance(node.args[0], ast.Constant):
            found[f"re.search({node.args[0].value!r})"] = node.args[0].value
        elif isinstance(getattr(module, name, None), re.Pattern):
            found[name] = getattr(module, name).pattern
    return found


# --- finding 7 and 8: tokenizer searches start only at the start of a run

def test_tokenizer_searches_start_a_match_only_where_a_run_starts():
    patterns = _searched_patterns(tokenizer)
    assert "_EMAIL" in patterns and len(patterns) >= 2
    assert [name for name, p in patterns.items() if _starts_inside_runs(p)] == []


def test_rule_searches_start_a_match_only_where_a_run_starts():
    assert [r.name for r in RULES
            if r.pattern is not None and _starts_inside_runs(r.pattern.pattern)] == []


def _view(subject: str = "hello", text: str = "hello", html: str | None = None):
    kind, body = ("text/html", html) if html is not None else ("text/plain", text)
    return view_of((f"From: a@example.org\r\nTo: b@example.net\r\nSubject: {subject}\r\n"
                    f"MIME-Version: 1.0\r\nContent-Type: {kind}; charset=utf-8\r\n"
                    f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}").encode())


@pytest.mark.parametrize("subject, padded", [
    ("Great offer      ID4432", True), ("Hi,      there", True), ("a\t\t \t\tb", True),
    ("a" + " " * 900 + "b", True), ("a    b", False), ("trailing      ", False),
    ("a      b c", False), ("a" + " " * 900, False), ("", False)])
def test_padded_subject_shape(subject, padded):
    assert ("s:shape:padded" in tokenizer.tokens(_view(subject))) is padded


@pytest.mark.parametrize("word, domain", [
    ("x" * 30 + "mailto:joe.bloggs+list@mail.example.com", "mail.example.com"),
    ("<<<first.last-and.a.long.name@example.org>>>", "example.org"),
    ("http://example.com/redirect?to=someone@example.net", "example.net"),
    ("name@host-without-a-dot@second.example.com", "second.example.com"),
    ("a" * 5000 + "@", None)])
def test_email_in_a_long_word(word, domain):
    found = [t for t in tokenizer.tokens(_view(text="x " + word)) if "email:" in t]
    assert found == ([f"email:{domain}"] if domain else [])


# --- finding 9: a rule anchored at a line start stays on that line

def test_line_start_rules_do_not_repeat_across_line_ends():
    bad = []
    for rule in RULES:
        if rule.pattern is None or not rule.pattern.flags & re.MULTILINE:
            continue
        for seq in _sequences(sre_parse.parse(rule.pattern.pattern).data):
            for (op, av), (nop, nav) in zip(seq, seq[1:]):
                if op is C.AT and av is C.AT_BEGINNING and _unbounded(nop, nav) \
                        and _can_match(nav[2], "\n"):
                    bad.append(rule.name)
    assert bad == []


def _hits(body="", html=None):
    view = _view(text=body, html=html)
    return {r.name for r in RuleSet(RULES).hits(view)}


@pytest.mark.parametrize("body, hit", [
    ("Dear Friend,\nI am writing", True), ("\n\n\n   Dear Sir/Madam,", True),
    ("hello\n\t \xa0Dear valued customer", True), ("x\r\n\r\nDEAR MEMBER", True),
    ("My dear friend", False), ("hello\n\n\n\nx dear friend", False), ("\n" * 5000, False)])
def test_dear_friend_at_a_line_start(body, hit):
    assert ("dear_friend" in _hits(body)) is hit


# --- finding 10 and 11: one tag is scanned once, whatever repeats inside it

def test_rules_hold_one_letter_repeat_per_attempt():
    assert [r.name for r in RULES if r.pattern is not None
            and max(_letter_repeats(sre_parse.parse(r.pattern.pattern).data, False)) > 1] == []


def test_html_rules_stay_inside_one_tag():
    for rule in RULES:
        if rule.target == "html":
            for seq in _sequences(sre_parse.parse(rule.pattern.pattern).data):
                for op, av in seq:
                    if _unbounded(op, av) or op is C.POSSESSIVE_REPEAT:
                        assert not _can_match(av[2], "<"), rule.name


@pytest.mark.parametrize("html, hit", [
    ('<a href="http://x.example/">\n  <img src="a.gif"></a>', True),
    ("<A HREF=http://x.example/ TARGET=_blank><IMG SRC=a.gif></A>", True),
    ('<a class="c" href="/p"><img src=a></a>', True),
    ('<a name="top"></a><a href="/p"><b><img src=a></b></a>', False),
    ('<a name="top"><img src=a></a>', False), ("<a " + "href " * 2000, False)])
def test_image_only_link(html, hit):
    assert ("html_img_only_link" in _hits(html=html)) is hit


def test_anchor_pattern_scans_one_tag_once():
    assert max(_letter_repeats(sre_parse.parse(structure._HREF_ANCHOR.pattern).data,
                               True)) <= 1


@pytest.mark.parametrize("html, pairs", [
    ('<a href="http://paypal.example.com/x">www.paypal.com</a>',
     [("http://paypal.example.com/x", "www.paypal.com")]),
    ("<A class=x HREF = 'https://a.test/' title=y>see <b>www.b.test</b></A>",
     [("https://a.test/", "see <b>www.b.test</b>")]),
    ('<a name=x href=mailto:a@b.test href="http://c.test">c</a>', [("http://c.test", "c")]),
    ('<a href="http://a.test">' + "x" * 300 + "</a><a href=http://b.test>b</a>",
     [("http://b.test", "b")]),
    ("<a href=http://a.test<b>a</a>", [("http://a.test<b", "a")]),
    ("<a " + "href=http://x " * 500, [])])
def test_anchor_pairs(html, pairs):
    assert structure._HREF_ANCHOR.findall(html) == pairs
