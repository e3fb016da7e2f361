"""Accents, Greek tonos, Hebrew points and Arabic vowel signs do not hide a word from subject
lines, content and spam rule terms and file-name patterns (tester i18n19 B1, B2): letters
compare without them, on both sides (shared/wildcard.py "Marks"; docs/filtering.md).

Greek capitals are written without the tonos, so `*ΠΡΟΣΦΟΡΑ*` is "Προσφορά" in capitals and
missed it; a Hebrew word with its vowel points (niqqud) missed the term written without
them. Each message goes through the decomposer, the checks and the verdict."""

from __future__ import annotations

import base64
import sys
import unicodedata

import pytest

from shared import wildcard
from shared.settings import SettingError, defaults, validate_changes
from tests.unit.pipeline.support import message, verdict_of


def encoded(text: str) -> str:
    return "=?utf-8?B?" + base64.b64encode(text.encode()).decode() + "?="


def rule(*terms: str) -> dict:
    return {"enabled": True, "match": "any", "terms": list(terms), "none_of": []}


@pytest.mark.parametrize("line,subject", [
    ("*ΠΡΟΣΦΟΡΑ*", "Προσφορά εβδομάδας"),          # the tester's: capitals without tonos
    ("*προσφορά*", "ΠΡΟΣΦΟΡΑ ΕΒΔΟΜΑΔΑΣ"),           # and the other way round
    ("*מבצע*", "מִבְצָע חדש"),                       # niqqud in the subject
    ("*résumé*", "Resume attached"),
    ("*resume*", "Re\u0301sume\u0301 attached"),    # NFD accents
    ("*İzmir*", "IZMIR toplantısı"),                # Turkish kept (the tester: it works)
    ("*ŞİFRE*", "şifre yenileme"),
])
def test_subject_line_matches_the_word_with_or_without_its_marks(line, subject):
    raw = message(encoded(subject))
    _, findings, verdict = verdict_of(raw, subject__enabled=True, subject__lines=[line])
    assert (verdict.disposition, verdict.rule) == ("drop", "subject.lines")
    # the event shows the subject as sent
    assert findings[0].data["subject"] == subject


@pytest.mark.parametrize("term,body", [
    ("κρυφός", "ΕΓΓΡΑΦΟ ΚΡΥΦΟΣ"),                    # the tester's: capitals without tonos
    ("κρυφός", "το έγγραφο είναι κρυφος"),           # written without the tonos
    ("סודי ביותר", "המסמך סוֹדִי בְּיוֹתֵר"),          # the tester's: niqqud in the text
    ("مال", "مـــالٌ"),                              # tatweel and a vowel sign (harakat)
    ("viagra", "cheap v\u0301i\u0308agra\u0300 here"),   # marks piled on to get past a term
    ("أحمد", "رسالة من أَحْمَد"),                      # harakat around a hamza seat
])
def test_content_rule_term_is_found_with_or_without_marks(term, body):
    raw = message("Hello", body=body + "\n")
    _, findings, verdict = verdict_of(raw, rules__content=[rule(term)])
    assert (verdict.disposition, findings[0].data["terms"]) == ("drop", [term])


def test_spam_rule_term_is_found_without_the_tonos():
    raw = message("Hello", body="ΔΩΡΕΑΝ ΠΡΟΣΦΟΡΑ ΣΗΜΕΡΑ\n")
    _, findings, _ = verdict_of(raw, rules__spam=[rule("δωρεάν προσφορά")])
    assert "spam_rule_violation" in [f.event for f in findings]


@pytest.mark.parametrize("pattern,name", [
    ("ΑΠΟΡΡΗΤΟ*", "απόρρητο_1.doc"),                  # the tester's
    ("résumé*.pdf", "RESUME_2024.PDF"),
    ("*סודי*", "קובץ_סוֹדִי.txt"),
])
def test_file_name_pattern_matches_without_marks_and_the_event_names_the_file(pattern, name):
    raw = message(attachments=[(name, b"data\n", "application/octet-stream")])
    _, findings, _ = verdict_of(raw, filename__enabled=True, filename__patterns=[pattern])
    [finding] = [f for f in findings if f.event == "attachment_deleted"]
    assert (finding.data["pattern"], finding.data["file"], finding.data["matched_name"]) == \
        (pattern, name, name)


@pytest.mark.parametrize("term,body", [
    ("ガス", "カス"),          # the kana voicing mark is part of the letter: kept
    ("कुछ", "कछ"),             # an Indic vowel sign: kept
    ("viagra", "vxagra"),     # a letter is still a letter
    # Arabic hamza and madda seat a letter (review19 r4 D2): أ إ آ are not ا, ؤ not و, ئ not ي
    ("سأل", "سال"),           # "asked" is not "flowed"
    ("مسؤول", "مسوول"),
    ("آمن", "امن"),
    ("إنذار", "انذار"),
    ("قائمة", "قايمة"),
])
def test_marks_that_are_part_of_the_letter_are_kept(term, body):
    _, _, verdict = verdict_of(message("Hello", body=body + "\n"), rules__content=[rule(term)])
    assert verdict.disposition == "deliver"


def test_a_subject_line_of_a_star_and_an_accent_alone_is_refused_as_blocking_everything():
    # read without its mark it is `*`, which would block every message
    with pytest.raises(SettingError) as refused:
        validate_changes(defaults(), {"subject.enabled": True, "subject.lines": ["*\u0301"]})
    assert "subject.lines: '*\u0301' alone would block every message" in refused.value.lines()


def test_every_character_with_a_canonical_decomposition_is_below_the_bound():
    beyond = [c for c in range(wildcard.CANONICAL_DECOMPOSITIONS_BELOW, sys.maxunicode + 1)
              if unicodedata.decomposition(chr(c))
              and not unicodedata.decomposition(chr(c)).startswith("<")]
    assert beyond == []


@pytest.mark.parametrize("key,value,line", [
    ("subject.lines", ["\u0301"],
     "subject.lines: '\u0301' (U+0301) reads as nothing"),
    ("filename.patterns", ["\u0640"],
     "filename.patterns: '\u0640' (U+0640) reads as nothing"),
    ("rules.content", [rule("mal", "\u064e\u0640")],
     'rules.content: rule 1 term "\u064e\u0640" (U+064E U+0640) reads as nothing'),
    ("rules.spam", [{**rule("offer"), "none_of": ["\u05b8"]}],
     'rules.spam: rule 1 none-of term "\u05b8" (U+05B8) reads as nothing'),
])
def test_an_entry_of_marks_alone_is_refused(key, value, line):
    """review19 r4 R4: compared without its marks it is "", which never matches (and a rule
    with `match: all` holding it never matched at all); it was saved without a word."""
    with pytest.raises(SettingError) as refused:
        validate_changes(defaults(), {key: value})
    assert any(refused_line.startswith(line) and "accents, marks and invisible characters "
               "are ignored" in refused_line for refused_line in refused.value.lines()), \
        refused.value.lines()


def test_an_entry_with_a_letter_and_marks_is_saved():
    validate_changes(defaults(), {"subject.lines": ["*\u0654*"], "filename.patterns": ["á*"],
                                  "rules.content": [rule("\u0301a")]})
