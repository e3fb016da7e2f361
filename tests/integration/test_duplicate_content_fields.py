"""A part whose header repeats Content-Type or Content-Transfer-Encoding with different
meanings, end to end: raw bytes over SMTP (smtplib) -> the core on loopback (real worker
processes, builtin signatures) -> a loopback sink.

Regression for av finding 1: the decomposer read only the first field, so EICAR behind a
second "Content-Transfer-Encoding: base64" (or a second Content-Type naming the real
boundary or the attachment's type) was delivered, and ClamAV found it in the delivered
bytes: mail readers differ in which field they follow. Such a part is now unprocessable
(decompose/content_fields.py rule 1: `scan.unprocessable`, hold by default); repeats that
mean the same stay a mere defect and the part is scanned as usual.
"""

from __future__ import annotations

import base64
import smtplib

import pytest
import trio

from core.app import run_core
from shared.events import Action
from tests.support.core import routed_home
from tests.support.mail import EICAR
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

EICAR_B64 = base64.b64encode(EICAR)
TOP = b"From: a@b.test\r\nTo: u@local.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
TEXT_PART = b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
ATTACHMENT = (b'Content-Type: application/octet-stream; name="e.com"\r\n'
              b'Content-Disposition: attachment; filename="e.com"\r\n')


def _mixed(attachment_header: bytes, top_type: bytes = b"Content-Type: multipart/mixed; "
           b"boundary=b\r\n") -> bytes:
    return (TOP + top_type + b"\r\n" + TEXT_PART + b"--b\r\n" + attachment_header + b"\r\n"
            + EICAR_B64 + b"\r\n--b--\r\n")


CONFLICTS = {
    # the first field says 7bit, so only the base64 text was scanned
    "encoding-7bit-then-base64": (_mixed(
        ATTACHMENT + b"Content-Transfer-Encoding: 7bit\r\n"
        b"Content-Transfer-Encoding: base64\r\n"), "Content-Transfer-Encoding"),
    # the same pair the other way round: a reader that follows the last field sees text
    "encoding-base64-then-7bit": (_mixed(
        ATTACHMENT + b"Content-Transfer-Encoding: base64\r\n"
        b"Content-Transfer-Encoding: 7bit\r\n"), "Content-Transfer-Encoding"),
    # the first boundary never occurs, so the whole body was read as one text part
    "boundary": (_mixed(ATTACHMENT + b"Content-Transfer-Encoding: base64\r\n",
                        b'Content-Type: multipart/mixed; boundary="zzz"\r\n'
                        b'Content-Type: multipart/mixed; boundary="b"\r\n'),
                 "Content-Type"),
    # a text part that a reader following the second fields decodes to a program
    "text-then-attachment": (_mixed(
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n" + ATTACHMENT
        + b"Content-Transfer-Encoding: base64\r\n"), "Content-Type"),
}


def _send_raw(port, data: bytes):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("a@b.test", ["u@local.test"], data)


async def _finished(core, home):
    """Wait until the message was delivered or held: until its last event, `completed` or
    `held`, is written (`held` follows the move into hold/ once that has come back from its
    thread, so the entry shows there first)."""
    await until(lambda: events_of(home, Action.COMPLETED) or events_of(home, Action.HELD),
                30, flush=core.events.aflush)


@pytest.mark.parametrize("name", list(CONFLICTS))
async def test_conflicting_content_fields_make_the_part_unprocessable(tmp_path, sink, nursery,
                                                                      name):
    raw, field = CONFLICTS[name]
    home = routed_home(tmp_path, sink)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_raw, core.smtp_addresses[0][1], raw)
    await _finished(core, home)
    assert sink.messages == []         # held, not delivered: fast/ is empty, hold/ has it
    errors = events_of(home, Action.SCAN_ERROR)
    assert errors and all(e["rule"] == "scan.unprocessable" for e in errors)
    assert any(f"conflicting {field} fields" in e["info"] for e in errors)
    [held] = events_of(home, Action.HELD)
    assert held["rule"] == "scan.unprocessable"
    assert len(list(home.queue("hold").iterdir())) == 1
    core.cancel_scope.cancel()


async def test_the_administrators_unprocessable_choice_applies(tmp_path, sink, nursery):
    raw, _field = CONFLICTS["encoding-7bit-then-base64"]
    home = routed_home(tmp_path, sink, scan__unprocessable="drop")
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_raw, core.smtp_addresses[0][1], raw)
    await until(lambda: events_of(home, Action.DROPPED), 30)
    await until(lambda: not list(home.queue("fast").iterdir()), 30)
    await core.events.aflush()
    assert sink.messages == [] and not list(home.queue("hold").iterdir())
    [dropped] = events_of(home, Action.DROPPED)
    assert dropped["rule"] == "scan.unprocessable"
    core.cancel_scope.cancel()


async def test_repeats_that_mean_the_same_are_scanned_and_delivered(tmp_path, sink, nursery):
    # the same encoding in another case, the same type and boundary with another charset:
    # every reader reads the part alike, so it is no reason to hold the message
    raw = _mixed(ATTACHMENT + b"Content-Transfer-Encoding: base64\r\n"
                 b"Content-Transfer-Encoding: BASE64\r\n",
                 b"Content-Type: multipart/mixed; boundary=b\r\n"
                 b'Content-Type: Multipart/Mixed; boundary="b"; charset=utf-8\r\n')
    home = routed_home(tmp_path, sink)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_raw, core.smtp_addresses[0][1], raw)
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert EICAR_B64 not in received.data and b"hello" in received.data
    await _finished(core, home)
    assert events_of(home, Action.SCAN_ERROR) == []
    [deleted] = events_of(home, Action.FILE_DELETED)
    assert "Mailmoat.Test.EICAR" in deleted["data"]
    [malformed] = events_of(home, Action.MALFORMED)
    assert "duplicate Content-Transfer-Encoding" in malformed["info"]
    assert "duplicate Content-Type" in malformed["info"]
    core.cancel_scope.cancel()
