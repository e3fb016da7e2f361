"""Each blocked subject line a subject matches is a finding of its own, and the message still
gets one disposition (core/pipeline/checks/subject.py; tester "guide", finding 5)."""

from tests.unit.pipeline.support import message, verdict_of


def with_second_subject(raw: bytes, subject: str) -> bytes:
    header, body = raw.split(b"\r\n\r\n", 1)
    return header + b"\r\nSubject: " + subject.encode() + b"\r\n\r\n" + body


def test_every_matching_line_is_a_finding_and_the_first_names_the_rule():
    _, findings, verdict = verdict_of(message("Re: FREE money now"), subject__enabled=True,
                                      subject__lines=["*free*", "*gift*", "*money*"])
    assert [(f.event, f.data["pattern"]) for f in findings] == [
        ("subject_blocked", "*free*"), ("subject_blocked", "*money*")]
    assert (verdict.disposition, verdict.rule) == ("drop", "subject.lines")
    assert "'*free*'" in verdict.reason


def test_forward_for_several_lines_is_one_forward():
    _, findings, verdict = verdict_of(message("free money"), subject__enabled=True,
                                      subject__lines=["*free*", "*money*"],
                                      subject__action="forward",
                                      subject__forward_to="review@local.test")
    assert [f.action for f in findings] == ["forward", "forward"]
    assert (verdict.disposition, verdict.forward_addresses) == ("forward",
                                                                ("review@local.test",))


def test_a_line_matching_two_subject_fields_is_reported_once():
    raw = with_second_subject(message("free gift"), "free money")
    _, findings, _ = verdict_of(raw, subject__enabled=True,
                                subject__lines=["*free*", "*money*"])
    assert [(f.data["pattern"], f.data["subject"]) for f in findings] == [
        ("*free*", "free gift"), ("*money*", "free money")]
