"""Spam and content rule terms are words or phrases, through the pipeline (decomposed
message -> checks -> verdict).

Guide finding 2 (B): with the spam rule `v*agra, c?alis` and the heuristic drop score 95, an
invoice with "Vendor" at the top and "Agra" 200 lines later, and "Our specialist will call
you on Monday.", were dropped as spam with score 100: `*` ran across the whole text and
`c?alis` was found inside "specialist". Content rules share the engine and dropped them too.
"""

import pytest

from tests.unit.pipeline.support import message, verdict_of

INVOICE = ("Vendor invoice attached.\n" + "Lorem ipsum dolor sit amet.\n" * 200
           + "Regards from the Agra office.\n")
SPECIALIST = "Our specialist will call you on Monday.\n"


def _rule(*terms):
    return {"enabled": True, "match": "any", "terms": list(terms), "none_of": []}


def _dropped_by_spam_rule(subject: str, body: str, *terms: str) -> bool:
    _, findings, verdict = verdict_of(
        message(subject=subject, body=body), rules__spam=[_rule(*terms)],
        heuristic__enabled=True, heuristic__drop_score=95)
    fired = "spam_rule_violation" in {f.event for f in findings}
    assert fired is (verdict.disposition == "drop")
    return fired


def _content_rule_fires(subject: str, body: str, *terms: str) -> bool:
    _, findings, verdict = verdict_of(message(subject=subject, body=body),
                                      rules__content=[_rule(*terms)],
                                      rules__content_action="drop")
    fired = "content_rule_violation" in {f.event for f in findings}
    assert fired is (verdict.disposition == "drop")
    return fired


@pytest.mark.parametrize("subject, body", [("Invoice 4711", INVOICE),
                                           ("Appointment", SPECIALIST)])
def test_the_testers_messages_are_not_dropped_by_v_star_agra_c_question_alis(subject, body):
    assert not _dropped_by_spam_rule(subject, body, "v*agra", "c?alis")
    assert not _content_rule_fires(subject, body, "v*agra", "c?alis")


@pytest.mark.parametrize("subject, body", [
    ("Offer", "buy v1agra now\n"),
    ("Offer", "cheap c1alis\n"),
    ("VIAGRA!", "Hello.\n"),                            # the Subject, at its start and end
    ("Offer", "viagra\n"),                              # the whole text
    ("Offer", "viagra is what we sell\n"),              # the very start of the text
    ("Offer", "what we sell is v-i-agra\n"),            # ...and its very end
])
def test_what_the_rule_is_for_is_still_dropped(subject, body):
    assert _dropped_by_spam_rule(subject, body, "v*agra", "c?alis")
    assert _content_rule_fires(subject, body, "v*agra", "c?alis")


def test_a_phrase_is_found_across_a_line_break():
    # the text is read with every run of white space as one space (core/pipeline/rules.py
    # as_compared), so a phrase wrapped by the sender's client still matches
    body = "Get a cheap\nrolex today\n"
    assert _content_rule_fires("Watches", body, "cheap rolex")
    assert _dropped_by_spam_rule("Watches", body, "cheap rolex")
    assert _content_rule_fires("Watches", "Get a cheap \n\t rolex today\n", "cheap r*x")


def test_a_cjk_term_is_found_in_a_sentence_without_spaces():
    assert _content_rule_fires("予定", "私は東京に住んでいます。\n", "東京")
    assert _dropped_by_spam_rule("販売", "バイアグラviagra販売\n", "viagra")


@pytest.mark.parametrize("body", ["Greetings from Sussex.\n", "Essex and Middlesex\n"])
def test_a_word_inside_another_is_not_found(body):
    # the Scunthorpe problem
    assert not _content_rule_fires("Hello", body, "sex")
    assert _content_rule_fires("Hello", body, "*sex")       # as written: inside a word
