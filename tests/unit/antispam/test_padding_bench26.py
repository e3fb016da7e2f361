"""bench/antispam_padding.py's attacks write what they say, where they say (docs/
antispam-model.md, "Links as padding" and "URLs as padding"), and a set read with windows
rules 5 and 6 keeps a spam the same weights read as rev 6 lose to them."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))   # bench/ is not installed

from bench.antispam_padding import Padding, measure      # noqa: E402
from core.scan.antispam import definitions as defs        # noqa: E402
from core.scan.antispam.chars import char_text           # noqa: E402
from core.scan.antispam.engine import HeuristicEngine, features   # noqa: E402
from core.scan.antispam.training import view_of          # noqa: E402
from core.scan.antispam.windows import Windows           # noqa: E402
from tests.support.definitions import packaged_spam_read  # noqa: E402

WEIGHTS = {"u:ham.example": -1.0, "u:www.ham.example": -0.9, "up:login": -0.5,
           "up:story": -0.4, "up:click": -0.3, "kernel": -0.8, "patch": -0.7,
           "hn:in-reply-to": -1.2, "H:user-agent:mutt": -1.1, "hn:received": -2.0,
           "cash": 2.0}
HTML = (b"From: a@spam.example\nSubject: deal\nContent-Type: text/html\n\n"
        b"<html><body><p>" + b"cash now " * 150 + b"</p></body></html>\n")
PLAIN = (b"From: a@spam.example\nSubject: deal\nContent-Type: text/plain\n\n"
         + b"cash now " * 150 + b"\n")


def test_padding_is_made_of_what_weighs_towards_ham_most_first():
    padding = Padding(WEIGHTS)
    assert padding.hosts == ["ham.example", "www.ham.example"]
    assert padding.path_words == ["login", "story", "click"]
    assert padding.words == ["kernel", "patch"]
    # received is the MTA's: an attacker adds the others
    assert padding.header_tokens == [("in-reply-to", None), ("user-agent", "mutt")]
    assert padding.url(0) == "http://ham.example/login/story/click.html"


@pytest.mark.parametrize("name, applies_to, in_text", [
    ("links_hidden", HTML, False), ("images_hidden", HTML, False),
    ("urls_front_html", HTML, True), ("urls_spread_html", HTML, True),
    ("urls_front_plain", PLAIN, True), ("urls_spread_plain", PLAIN, True)])
def test_each_url_attack_writes_n_urls_where_it_says(name, applies_to, in_text):
    padding = Padding(WEIGHTS)
    attack = padding.attacks()[name]
    other = PLAIN if applies_to is HTML else HTML
    assert attack(other, 5) is None
    padded = attack(applies_to, 20).decode()
    urls = re.findall(r"http://[\w.]+/[\w/]+\.\w+", padded)
    if "spread" in name:        # one first, then about 20 per 200 of the spam's 300 words
        assert 25 <= len(urls) <= 40
    else:
        assert len(urls) == 20 * (2 if name == "urls_front_html" else 1)   # href and text
    text = re.sub(r'"[^"]*"', "", padded)           # what is not inside an attribute
    assert ("http://" in text) is in_text


def test_words_and_headers_are_added_as_said():
    padding = Padding(WEIGHTS)
    assert padding.words_spread_plain(PLAIN, 10).count(b" kernel ") >= 5
    padded = padding.headers_added(PLAIN, 2)
    assert padded.startswith(b"in-reply-to: x\nuser-agent: mutt\nFrom: a@spam.example")


ALTERNATIVE = (b"From: a@spam.example\nSubject: deal\nMIME-Version: 1.0\nContent-Type: "
               b"multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
               + b"cash now " * 150 + b"\n--b\nContent-Type: text/html\n\n<html><body><p>"
               + b"cash now " * 150 + b"</p></body></html>\n--b--\n")


@pytest.mark.parametrize("raw", [HTML, PLAIN])
def test_the_licence_is_added_in_front_or_after_the_spams_text(raw):
    padding = Padding(WEIGHTS)
    front = padding.licence_front(raw, 4).decode()
    # in front, the licence is what the character model reads first (after the Subject)
    view = view_of(front.encode())
    parts: list = []
    features(view, defs.load(defs.PACKAGED_DIR), parts)
    assert char_text(view.as_learned(), parts, 3000).data.startswith(
        b"deal gnu general public license version 3")
    end = padding.licence_end(raw, 4).decode()
    words = 4 * 25
    for padded in (front, end):
        body = padded.partition("\n\n")[2]
        block = re.search(r"GNU GENERAL PUBLIC LICENSE.*?(?=</p>|\n)", body).group(0)
        assert len(block.split()) == words
    assert front.index("GNU GENERAL") < front.index("cash now")
    assert end.index("GNU GENERAL") > end.rindex("cash now")
    if raw is HTML:
        assert "<p>GNU GENERAL" in front and front.index("<body>") < front.index("GNU")
        assert end.index("GNU") < end.index("</body>")
        assert "&lt;https://fsf.org/&gt;" in front


def test_the_licence_and_the_stars_go_only_where_they_are_read_first():
    padding = Padding(WEIGHTS)
    base64_plain = PLAIN.replace(b"text/plain", b"text/plain\nContent-Transfer-Encoding: base64")
    for attack in (padding.licence_front, padding.licence_end, padding.stars_hidden):
        assert attack(ALTERNATIVE, 2) is None
        assert attack(base64_plain, 2) is None
    assert padding.stars_hidden(PLAIN, 2) is None
    starred = padding.stars_hidden(HTML, 2)
    assert starred.count(b"&#9733;") == 60
    view = view_of(starred)
    parts: list = []
    features(view, defs.load(defs.PACKAGED_DIR), parts)
    text = char_text(view.as_learned(), parts, 3000)
    # the stars are characters the gate counts, and no byte the model reads
    assert text.characters - len(text.data) >= 60 and b"9733" not in text.data


def test_rules_5_and_6_keep_a_spam_the_plain_windows_lose(tmp_path):
    # the shipped weights read three ways, over one synthetic spam: links and URLs towards
    # ham pull rev 6's reading down (and rev 7's, for URLs written as text), not rules 5
    # and 6 (windows.py)
    spam = (b"From: deals@cheap-meds.example\nTo: you@example.com\nSubject: Cheap meds, save "
            b"80%!!!\nMIME-Version: 1.0\nContent-Type: text/html\n\n<html><body><p>Lose "
            b"weight fast! Cheap meds without prescription, 100% satisfaction guaranteed. "
            b"Click here to order now and save 80%! Limited time offer, act now!</p><a "
            b"href=\"http://cheap-meds.example/order\">Order</a></body></html>\n")
    kept, scores = {}, {}
    for name, windows in (("rev6", Windows(200, 0.5)), ("rev7", Windows(200, 0.5, "spam_side")),
                          ("rev8", Windows(200, 0.5, "spam_side", "spam_side"))):
        definitions = packaged_spam_read(tmp_path / name, windows)
        result = measure(definitions, [spam], ["links_hidden", "urls_spread_html"])
        kept[name] = {attack: counts for attack, (_, counts) in result.items()}
        padding, engine = Padding(definitions.weights), HeuristicEngine(definitions)
        scores[name] = [engine.score(view_of(raw)).score for raw in (
            spam, padding.links_hidden(spam, 40), padding.urls_spread_html(spam, 50))]
    assert kept["rev6"]["links_hidden"][-1] == 0 and kept["rev6"]["urls_spread_html"][-1] == 0
    assert kept["rev7"]["links_hidden"] == [1] * 5 and kept["rev7"]["urls_spread_html"][-1] == 0
    assert kept["rev8"] == {"links_hidden": [1] * 5, "urls_spread_html": [1] * 5}
    # not only under 90: far under, where they win
    assert scores["rev6"][0] >= 90 and scores["rev6"][1] < 50 and scores["rev6"][2] < 50
    assert scores["rev7"][1] >= 90 and scores["rev7"][2] < 50
    assert min(scores["rev8"]) >= 90
