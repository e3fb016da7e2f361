"""Settings that become header text of mail (a Subject, a prefix to one) refuse control
characters and text-direction overrides (tester25a B3: a BEL in the subject prefix went raw
into delivered Subjects, U+202E reversed how the rest of it read)."""

from __future__ import annotations

import pytest

from shared import cli
from shared.settings import SCHEMA
from shared.settings_types import RuleError

HEADER_KEYS = ["heuristic.subject_prefix", "premium.spam.subject_prefix",
               "premium.suspected.subject_prefix", "quarantine.notify.subject",
               "notify.admin.subject", "notify.sender.subject", "outbreak.subject",
               "rules.content_forward_subject"]


@pytest.mark.parametrize("key", HEADER_KEYS)
@pytest.mark.parametrize("bad, code, at", [("a\x07b", "0007", 2), ("\x1b[31mRED", "001B", 1),
                                           ("\u202eevil", "202E", 1), ("x\u2028y", "2028", 2),
                                           ("x\x85y", "0085", 2), ("x\x7fy", "007F", 2)])
def test_header_text_refuses_control_and_override_characters(key, bad, code, at):
    with pytest.raises(RuleError) as refused:
        SCHEMA[key].kind.check(bad)
    assert str(refused.value) == (f"must not contain control or text-direction characters "
                                  f"(U+{code}, character {at})")


@pytest.mark.parametrize("good", ["[Spam]", "[\u30b9\u30d1\u30e0]", "a\tb",
                                  "\u05e1\u05e4\u05d0\u05dd\u200f [Spam]", "\u2067x\u2069"])
def test_header_text_keeps_tabs_marks_isolates_and_any_script(good):
    assert SCHEMA["heuristic.subject_prefix"].kind.check(good) == good


def test_the_cli_refuses_it_naming_the_key(home, capsys):
    assert cli.main(["config", "set", "heuristic.subject_prefix", "a\x07b",
                     "--home", str(home.root)]) == 2
    assert capsys.readouterr().err == ("heuristic.subject_prefix: must not contain control or "
                                       "text-direction characters (U+0007, character 2)\n")


def test_the_hold_queue_forward_subject_is_header_text_too(home, capsys):
    # the CLI's --subject (review25b R1): refused before any request is written
    assert cli.main(["queue", "forward", "sec@example.com", "--hold", "--subject",
                     "\u202eevil", "--home", str(home.root)]) == 2
    assert capsys.readouterr().err.endswith(
        "--subject: must not contain control or text-direction characters (U+202E, "
        "character 1)\n")


def test_every_subject_setting_is_header_text():
    # a new subject setting is held to it too (review25b T2)
    named = [key for key in SCHEMA if key.endswith(("subject", "subject_prefix"))]
    assert set(HEADER_KEYS) <= set(named)
    assert [key for key in named if not SCHEMA[key].kind.header] == []


def test_other_text_is_not_held_to_it():
    assert SCHEMA["disclaimer.text"].kind.check("a\x07b") == "a\x07b"
