"""Hostile MIME structure end to end: raw bytes over SMTP (smtplib) -> the core on loopback
(real worker processes, builtin signatures) -> a loopback sink. What the gateway scans must
be what the next hop and the reader get:

- a header not ended by a blank line: the first line that is not a field starts the body
  (decompose/mime.py rule 4), so the content checks see it and header edits land in the
  header;
- a bare CR is a line end for the decomposer as it is for the relay (which turns it into
  CRLF) and for Python's email parser (decompose/mime.py rule 2);
- content nested past MAX_MIME_NESTING is not followed and so is unprocessable
  (decompose/__init__.py rule 3): held by default, never delivered unscanned.
"""

from __future__ import annotations

import base64
import email
import smtplib
from email import policy

import pytest
import trio

from core.app import run_core
from shared.events import Action
from tests.support.core import routed_home
from tests.support.mail import EICAR, EICAR_ATTACHMENT, nested_multipart
from tests.support.waiting import at_least, events_of, until

pytestmark = pytest.mark.trio

TOP = b"From: a@b.test\r\nTo: u@local.test\r\nSubject: x\r\n"


def _send_raw(port, data: bytes):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("a@b.test", ["u@local.test"], data)


async def _settle(core, home):
    await until(lambda: not list(home.queue("fast").iterdir()), 30)
    await core.events.aflush()


# --- a header not ended by a blank line ----------------------------------------------------------

@pytest.mark.parametrize("top", [TOP, TOP[:-2] + b"\r"], ids=["crlf", "bare-cr"])
async def test_eicar_line_right_after_the_header_is_caught(tmp_path, sink, nursery, top):
    # regression: the decomposer ended the header only at a blank line and dropped this
    # line as "a header line without a field name", so the antivirus never saw it
    home = routed_home(tmp_path, sink)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_raw, core.smtp_addresses[0][1], top + EICAR + b"\r\n")
    await _settle(core, home)
    await trio.sleep(0.5)
    assert sink.messages == []
    [dropped] = events_of(home, Action.DROPPED)
    assert dropped["rule"] == "av.outer_message"
    [malformed] = events_of(home, Action.MALFORMED)
    assert "no blank line after the header" in malformed["info"]
    core.cancel_scope.cancel()


async def test_spam_line_right_after_the_header_is_marked_in_the_header(tmp_path, sink,
                                                                         nursery):
    home = routed_home(tmp_path, sink, rules__spam=[{"terms": ["cheap pills"]}],
                 heuristic__x_bulk=True)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(
        _send_raw, core.smtp_addresses[0][1],
        TOP + b"Hello friend, buy cheap pills today\r\nsecond line\r\n")
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    # the marks went into the header, and the rewrite put the missing blank line after it
    assert parsed["Subject"] == "[Spam] x" and parsed["X-Bulk"] == "100"
    assert parsed.defects == []
    assert parsed.get_content().startswith("Hello friend, buy cheap pills today")
    head, _, body = received.data.partition(b"\r\n\r\n")
    assert b"X-Bulk: 100" in head and body.startswith(b"Hello friend")
    await _settle(core, home)
    [event] = events_of(home, Action.SPAM_RULE_VIOLATION)
    assert event["rule"] == "rules.spam[0]"
    core.cancel_scope.cancel()


async def test_part_header_without_blank_line_is_scanned(tmp_path, sink, nursery):
    raw = (TOP + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
           b"--b\r\nContent-Type: application/octet-stream; name=a.com\r\n"
           + EICAR + b"\r\n--b--\r\n")
    home = routed_home(tmp_path, sink)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_raw, core.smtp_addresses[0][1], raw)
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert EICAR not in received.data and b"hello" in received.data
    await _settle(core, home)
    [deleted] = events_of(home, Action.FILE_DELETED)
    assert "Mailmoat.Test.EICAR" in deleted["data"]
    core.cancel_scope.cancel()


async def test_delimiter_after_a_bare_cr_is_a_delimiter(tmp_path, sink, nursery):
    # the relay turns the bare CR into CRLF, so the next hop sees a second part here
    raw = (TOP + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r--b\r\n" + EICAR_ATTACHMENT
           + b"--b--\r\n")
    home = routed_home(tmp_path, sink)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_raw, core.smtp_addresses[0][1], raw)
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    assert [p.get_filename() for p in parsed.iter_attachments()] == [None]   # the notice
    assert base64.b64encode(EICAR) not in received.data
    await _settle(core, home)
    assert len(events_of(home, Action.FILE_DELETED)) == 1
    core.cancel_scope.cancel()


# --- nesting past MAX_MIME_NESTING ---------------------------------------------------------------

async def test_content_nested_past_the_mime_limit_is_held_not_delivered(tmp_path, sink,
                                                                        nursery):
    # regression: 120 nested multiparts with EICAR at the bottom were delivered unscanned
    # with only a `malformed` event
    home = routed_home(tmp_path, sink)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_raw, core.smtp_addresses[0][1],
                                  nested_multipart(120, EICAR_ATTACHMENT))
    await until(lambda: list(home.queue("hold").iterdir()), 30)
    # the move into hold/ comes back from its thread before its event is recorded
    await at_least(home, Action.HELD, 1, 30, flush=core.events.aflush)
    await _settle(core, home)
    await trio.sleep(0.5)
    assert sink.messages == []
    [error] = events_of(home, Action.SCAN_ERROR)
    assert error["rule"] == "scan.unprocessable"
    assert "MIME nesting deeper than 100" in error["info"]
    [held] = events_of(home, Action.HELD)
    assert held["rule"] == "scan.unprocessable"
    core.cancel_scope.cancel()


# --- HTML whose tags never close --------------------------------------------------------------

@pytest.mark.parametrize("unit", [b"<a ", b"<!--", b"<script>", b"<font "],
                         ids=["tag", "comment", "script", "font"])
async def test_html_that_never_closes_its_tags_is_scanned_and_delivered(tmp_path, sink,
                                                                        nursery, unit):
    # regression: "<a " * 50000 (150 KB) made every "<" scan to the end of the part, in the
    # HTML reduction, the structure tokens and three heuristic rules; the worker ran into its
    # 60-second limit three times and the message was held as suspect, stalling the workers
    home = routed_home(tmp_path, sink, heuristic__enabled=True, heuristic__x_bulk=True,
                       rules__spam=[{"terms": ["viagra"]}])
    core = await nursery.start(run_core, home)
    markup = b"<p>buy viagra now</p>" + unit * (360_000 // len(unit))
    body = b"\r\n".join(markup[i:i + 900] for i in range(0, len(markup), 900))
    message = TOP + b"Content-Type: text/html\r\n\r\n" + body + b"\r\n"
    await trio.to_thread.run_sync(_send_raw, core.smtp_addresses[0][1], message)
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1, 50)
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    assert parsed["X-Bulk"] is not None
    assert parsed["Subject"].startswith("[Spam]")          # the spam rule saw the text
    await core.events.aflush()
    assert not events_of(home, Action.SCAN_ERROR)
