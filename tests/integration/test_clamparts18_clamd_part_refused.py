"""clamd refusing one part is that part's scan_error, and clamd is still asked about the
message's other parts; clamd itself failing is one scan_error and no more asking
(core/scan/clamd.py rule 2, core/pipeline/checks/antivirus.py). clampartsfix18: any clamd
error on one part — its "INSTREAM size limit exceeded" for an over-long part among them
(aa923b0) — stopped the check asking clamd about the others, so with scan.unprocessable
deliver (or drop) a virus in a later part went unscanned by clamd. Against a real clamd
(tests/support/clamd.py) with a small StreamMaxLength."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import pytest

from core.pipeline.checks import antivirus
from core.scan.clamd import ScanError, StreamRefused, parse_reply
from tests.support.clamd import STREAM_REFUSAL, clamd_fixture, free_port
from tests.support.mail import EICAR
from tests.unit.scan.support import corpus_or_skip, settings, view_of

STREAM_MAX_MB = 1
clamd = clamd_fixture(stream_max_mb=STREAM_MAX_MB)


def _with_attachments(files: dict[str, bytes]) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = \
        "a@outside.test", "user@local.test", "test"
    message.set_content("See the attachments.\n")
    for name, data in files.items():
        message.add_attachment(data, maintype="application", subtype="octet-stream",
                               filename=name)
    return message.as_bytes(policy=SMTP)


def _infected(engine: str) -> tuple[str, bytes]:
    """A file only clamd finds with the engines of `engine` ("both": the builtin engine
    scans first, and would find EICAR itself)."""
    if engine == "clamd":
        return "eicar.com", EICAR
    return "clam-aspack.exe", (corpus_or_skip() / "clamav-testfiles" / "clam-aspack.exe") \
        .read_bytes()


@pytest.mark.parametrize("engine", ["clamd", "both"])
def test_a_part_clamd_refuses_leaves_the_others_scanned_by_it(clamd, engine):
    name, infected = _infected(engine)
    changes = {"av__engine": engine, "av__clamd__address": clamd.address,
               "scan__unprocessable": "deliver"}
    view = view_of(_with_attachments({"backup.bin": bytes(STREAM_MAX_MB * 2**20 + 4096),
                                      name: infected}), **changes)
    findings = antivirus.check(view, settings(**changes))
    # the part after the refused one was still sent to clamd, which found it
    assert [(f.event, f.data.get("file"), f.data.get("engine")) for f in findings
            if f.event != "scan_error"] == [("file_deleted", name, "clamd")]
    [backup] = [p.id for p in view.parts if p.filename == "backup.bin"]
    [error] = [f for f in findings if f.event == "scan_error"]
    assert (error.rule, error.action, error.part, error.data) == (
        "av.engine", "deliver", backup, {"engine": "clamd"})
    assert STREAM_REFUSAL in error.reason and "backup.bin" in error.reason


def test_a_clamd_that_does_not_answer_is_one_scan_error_for_the_message():
    # clamd itself failing still ends the asking: one finding, not one per part
    address = f"127.0.0.1:{free_port()}"            # nothing listens there
    changes = {"av__engine": "clamd", "av__clamd__address": address,
               "scan__unprocessable": "deliver"}
    raw = _with_attachments({"a.bin": b"a" * 100, "b.bin": b"b" * 100, "c.com": EICAR})
    findings = antivirus.check(view_of(raw, **changes), settings(**changes))
    assert [(f.event, f.part) for f in findings] == [("scan_error", None)]
    assert "unreachable" in findings[0].reason


@pytest.mark.parametrize("reply", ["stream: Can't create temporary file ERROR",
                                   "stream: Time limit reached ERROR"])
def test_an_error_clamd_answers_a_stream_with_is_about_that_stream(reply):
    with pytest.raises(StreamRefused) as caught:
        parse_reply(reply, "127.0.0.1:3310")
    assert reply in str(caught.value)


@pytest.mark.parametrize("reply", ["UNKNOWN COMMAND", "Error processing command. ERROR",
                                   "stream: something else"])
def test_a_reply_that_is_not_clamds_answer_to_a_stream_is_about_clamd(reply):
    with pytest.raises(ScanError) as caught:
        parse_reply(reply, "127.0.0.1:3310")
    assert not isinstance(caught.value, StreamRefused)
