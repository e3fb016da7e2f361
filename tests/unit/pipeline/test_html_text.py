"""HTML reduced to its text (core/pipeline/decompose/text.py) as a mail client shows it:
what the content and spam rules read (SPEC §3 rules.spam)."""

from __future__ import annotations

import pytest

from core.pipeline.decompose.text import as_read, html_to_text, unflow


@pytest.mark.parametrize("markup, shown", [
    # a <body> inside an open <head> ends it: the text after it is on screen
    ("<html><head><body><p>buy viagra now</p></body></head></html>", "buy viagra now"),
    ("<head><title>t</title><body>buy viagra now", "buy viagra now"),
    # a head never closed holds no text: what follows its title is shown
    ("<html><head><title>Campaign</title><meta x=y>\n<DIV>To be removed, CLICK HERE</DIV>"
     "</body></html>", "To be removed, CLICK HERE"),
    # "<!-->" and "<!--->" are empty comments (HTML5 abrupt closing)
    ("<p><!-->buy viagra now<!-- x --></p>", "buy viagra now"),
    ("<p><!--->buy viagra now</p>", "buy viagra now"),
    # inline tags and comments inside a word are nothing
    ("v<span>iag</span>ra via<!-- x -->gra", "viagra viagra"),
    # head, script and style are not shown
    ("<head><title>hidden</title></head><body>hi <script>x()</script>there<style>a{}</style>",
     "hi there"),
    ("<SCRIPT type=x>a</Script >shown", "shown"),
])
def test_text_as_shown(markup, shown):
    assert " ".join(html_to_text(markup).split()) == shown


@pytest.mark.parametrize("markup", ["shown <!-- never closed", "shown <script>never closed",
                                    "shown <head><title>never closed"])
def test_an_element_or_comment_never_closed_runs_to_the_end(markup):
    assert html_to_text(markup).split() == ["shown"]


def test_a_less_than_sign_in_text_stays_text():
    assert " ".join(html_to_text("<p>a < b and c<d</p>").split()) == "a < b and c<d"


@pytest.mark.parametrize("text, read", [
    ("se\u200bcret pl\u00adan\ufeff", "secret plan"),            # draw nothing
    ("p\u0430yp\u0430l l\u043egin", "paypal login"),             # Cyrillic a, o among Latin
    ("\u0405\u0440\u0435\u0441ial \u03bfffer", "Special offer"),  # Cyrillic, Greek
    ("\u041f\u0440\u0438\u0432\u0435\u0442 \u03b1\u03b8\u03b7\u03bd\u03b1",  # Russian, Greek
     "\u041f\u0440\u0438\u0432\u0435\u0442 \u03b1\u03b8\u03b7\u03bd\u03b1"),
    ("Windows-\u0432\u0435\u0440\u0441\u0438\u044f", "Windows-\u0432\u0435\u0440\u0441\u0438\u044f"),
])
def test_text_is_read_as_a_reader_sees_it(text, read):
    assert as_read(text) == read


@pytest.mark.parametrize("flowed, delsp, shown", [
    # RFC 3676: a line ending in a space is a soft break; DelSp=yes deletes that space
    ("Ask about proj \r\nect falcon\r\n", True, "Ask about project falcon\n"),
    ("Ask about the  \r\nplan\r\n", True, "Ask about the plan\n"),
    ("Ask about the \r\nplan\r\n", False, "Ask about the plan\n"),
    # quote depth: soft breaks join lines of one depth only; space-stuffing is undone
    ("> a soft \r\n> line\r\n>> deeper\r\n From here\r\n", False,
     "> a soft line\n>> deeper\nFrom here\n"),
    ("> soft at the end \r\nnot quoted\r\n", False, "> soft at the end \nnot quoted\n"),
    # the signature separator is a hard break
    ("text\r\n-- \r\nsig", True, "text\n-- \nsig"),
])
def test_flowed_text_is_read_as_shown(flowed, delsp, shown):
    assert unflow(flowed, delsp) == shown
