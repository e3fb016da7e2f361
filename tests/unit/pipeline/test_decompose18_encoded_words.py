"""RFC 2047 encoded words glued to plain text are read as mail readers show them, and in the
legacy reading too (core/pipeline/decompose/fieldvalue.py rule 4; content18 A1, A2, C2).

The email package's `make_header` puts a space where an encoded word meets text without one:
`filename="=?UTF-8?Q?run.v?=bs"` read "run.v bs", past `*.vbs`, while Python's
`email.policy.default` and mail readers show "run.vbs"; `Subject: zqx=?UTF-8?Q?forbid?=` read
"zqx forbid", past the subject line `*zqxforbid*` and the content rule term `zqxsecret`.
"""

import email
import email.policy

import pytest

from core.pipeline.decompose.content_fields import decode_word_readings
from core.pipeline.decompose.fieldvalue import decode_words_as_shown
from tests.unit.pipeline.support import verdict_of, view_of

VBS = b"MsgBox \"hello\"\r\n"


def attachment_named(disposition: str) -> bytes:
    """A message with one attachment whose Content-Disposition is `disposition`."""
    return (b"From: a@outside.test\r\nTo: user@local.test\r\nSubject: f\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n"
            b"--BB\r\nContent-Type: text/plain\r\n\r\nhello there\r\n"
            b"--BB\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: " + disposition.encode() + b"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nTXNnQm94ICJoZWxsbyINCg==\r\n--BB--\r\n")


def with_subject(subject: str) -> bytes:
    return (b"From: a@outside.test\r\nTo: user@local.test\r\nMIME-Version: 1.0\r\n"
            b"Subject: " + subject.encode() + b"\r\n\r\nbody\r\n")


def shown_by_python(subject: str) -> str:
    return str(email.message_from_bytes(with_subject(subject),
                                        policy=email.policy.default)["subject"])


@pytest.mark.parametrize("value", [
    "zqx=?UTF-8?Q?forbid?=", "zqx=?UTF-8?B?Zm9yYmlk?=", "=?UTF-8?Q?zqx?=forbid",
    "about zqx=?UTF-8?Q?secret?= today", "=?us-ascii?q?zqx?=forbid", "a=?utf-8?q?b?=c",
    "=?us-ascii?q?a?= =?utf-8?q?b?=", "=?utf-8?q?a_?=b", "=?utf-8?q?a?=\"b\"",
    "=?utf-8?q?a?= =?UTF8?q?b?= =?us-ascii?q?c?= d =?ascii?q?e?=",
    # values that read alike both ways
    "x =?utf-8?q?a?= y", "(=?utf-8?q?b?=)", "=?utf-8?q?caf=C3=A9?= =?utf-8?q?_au_lait?=",
    "Re: =?ISO-8859-2?Q?=B1?= plain =?koi8-r?q?=F0?=(x)",
])
def test_the_shown_reading_is_python_policy_defaults(value):
    assert decode_words_as_shown(value) == shown_by_python(value)


def test_a_folded_value_reads_its_fold_as_one_space():
    assert decode_words_as_shown("zqx\n =?utf-8?q?forbid?=") == "zqx forbid"
    assert decode_words_as_shown("=?utf-8?q?a?=\n =?iso-8859-1?q?b?=") == "ab"


def test_readings_are_the_shown_one_then_the_legacy_one_where_it_differs():
    assert decode_word_readings("zqx=?UTF-8?Q?forbid?=") == (["zqxforbid", "zqx forbid"], True)
    assert decode_word_readings("x =?utf-8?q?a?= y") == (["x a y"], True)
    assert decode_word_readings("=?x-nonesuch-9?q?a?=b") == (["=?x-nonesuch-9?q?a?=b"], False)


@pytest.mark.parametrize("disposition,shown", [
    ('attachment; filename="=?UTF-8?Q?run.v?=bs"', "run.vbs"),
    ('attachment; filename="=?UTF-8?Q?invoice?=.vbs"', "invoice.vbs"),
    ('attachment; filename="readme.txt"; filename="=?UTF-8?Q?run.v?=bs"', "readme.txt"),
])
def test_a_name_glued_to_an_encoded_word_is_blocked_and_the_event_shows_it_as_readers_do(
        disposition, shown):
    view, findings, verdict = verdict_of(attachment_named(disposition), filename__enabled=True)
    [finding] = [f for f in findings if f.event == "attachment_deleted"]
    assert finding.data["pattern"] == "*.vbs"
    assert finding.data["file"] == shown                # C2: no space put in
    assert " " not in finding.data["matched_name"]
    assert verdict.disposition == "deliver"
    assert view.parts[2].filename == shown


def test_a_name_is_matched_in_the_legacy_reading_too():
    view = view_of(attachment_named('attachment; filename="=?UTF-8?Q?run?=.v bs"'))
    assert view.parts[2].names == ["run.v bs", "run .v bs"]
    view = view_of(attachment_named('attachment; filename="=?UTF-8?Q?run?= x.zip"'))
    assert view.parts[2].names == ["run x.zip"]               # alike both ways: once
    _, findings, _ = verdict_of(attachment_named('attachment; filename="=?UTF-8?Q?a?=b.exe"'),
                                filename__enabled=True, filename__patterns=["a b.*"])
    assert [f.data["file"] for f in findings if f.event == "attachment_deleted"] == ["ab.exe"]


@pytest.mark.parametrize("subject", [
    "zqx=?UTF-8?Q?forbid?=", "zqx=?UTF-8?B?Zm9yYmlk?=", "=?UTF-8?Q?zqx?=forbid",
    "Re: zqx=?UTF-8?Q?forbid?= now",
])
def test_a_subject_glued_to_an_encoded_word_meets_the_subject_lines(subject):
    view, findings, verdict = verdict_of(with_subject(subject), subject__enabled=True,
                                         subject__lines=["*zqxforbid*"])
    assert verdict.disposition == "drop" and verdict.rule == "subject.lines"
    [finding] = findings
    assert "zqxforbid" in finding.data["subject"]
    assert "zqxforbid" in view.subject                 # the events' subject column


def test_a_subject_line_written_for_the_legacy_reading_still_matches():
    _, findings, _ = verdict_of(with_subject("zqx=?UTF-8?Q?forbid?="), subject__enabled=True,
                                subject__lines=["zqx forbid"])
    assert [f.data["subject"] for f in findings] == ["zqx forbid"]


def test_a_content_rule_term_glued_to_an_encoded_word_in_the_subject_is_found():
    rule = {"enabled": True, "match": "any", "terms": ["zqxsecret"], "none_of": []}
    _, findings, verdict = verdict_of(with_subject("about zqx=?UTF-8?Q?secret?= today"),
                                      rules__content=[rule])
    assert [f.event for f in findings] == ["content_rule_violation"]
    assert verdict.disposition == "drop"


def test_the_readings_of_a_subject_stay_one_field_for_reports():
    view = view_of(with_subject("zqx=?UTF-8?Q?forbid?="))
    assert view.header_all("subject") == ["zqxforbid"]
    assert view.subjects() == ["zqxforbid", "zqx forbid"]
    assert view_of(with_subject("plain =?utf-8?q?word?= here")).subjects() == [
        "plain word here"]


def test_the_heuristic_engine_reads_the_legacy_reading_its_model_learned_on():
    view = view_of(with_subject("zqx=?UTF-8?Q?forbid?="))
    learned = view.as_learned()
    assert learned.subject == "zqx forbid" and learned.header("subject") == "zqx forbid"
    assert learned.parts is view.parts and view.subject == "zqxforbid"
    plain = view_of(with_subject("x =?utf-8?q?a?= y"))
    assert plain.as_learned() is plain
