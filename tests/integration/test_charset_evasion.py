"""Charset labels that mail readers know but Python's codec registry does not, or reads more
narrowly, end to end: raw bytes over SMTP (smtplib) -> the core on loopback (real worker
processes) -> a loopback sink.

Regression for i18n findings 2 and 3: a subject =?x-sjis?B?...?= passed a subject line, a
windows-31j body passed a content term, an attachment named =?x-sjis?B?aW52b2ljZS5qcw==?=
(invoice.js) passed the *.js pattern, and GBK text labelled gb2312 or windows-1252 text
labelled iso-8859-1 passed a term every reader shows. decompose/charsets.py reads the labels
as readers do.
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
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

TOP = b"From: a@sender.test\r\nTo: user@local.test\r\nMIME-Version: 1.0\r\n"
RULES = dict(subject__enabled=True, subject__lines=["*無料*", "*免费*"],
             rules__content=[{"terms": ["機密", "發票", "sœur", "เอกสารลับ"]}],
             filename__enabled=True, filename__patterns=["*.js"])


def _word(text: str, codec: str, label: str) -> bytes:
    return f"=?{label}?B?{base64.b64encode(text.encode(codec)).decode()}?=".encode()


def _text(subject: bytes, charset: bytes, body: bytes) -> bytes:
    return (TOP + b"Subject: " + subject + b"\r\nContent-Type: text/plain; charset=" + charset
            + b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n")


BLOCKED = {
    "subject-x-sjis": (_text(b"=?x-sjis?B?jaGT+oLNlrOXv4LFgrc=?=", b"us-ascii", b"hallo"),
                       "subject.lines", Action.SUBJECT_BLOCKED),
    "subject-x-gbk": (_text(_word("今天免费领取", "gbk", "x-gbk"), b"us-ascii", b"hallo"),
                      "subject.lines", Action.SUBJECT_BLOCKED),
    "body-windows-31j": (_text(b"x", b"windows-31j", "これは機密です".encode("cp932")),
                         "rules.content[0]", Action.CONTENT_RULE_VIOLATION),
    "body-gb2312-as-gbk": (_text(b"x", b"gb2312", "请查收發票".encode("gbk")),
                           "rules.content[0]", Action.CONTENT_RULE_VIOLATION),
    "body-iso-8859-1-as-windows-1252": (_text(b"x", b"iso-8859-1", "ma sœur".encode("cp1252")),
                                        "rules.content[0]", Action.CONTENT_RULE_VIOLATION),
    "body-windows-874": (_text(b"x", b"windows-874", "นี่คือเอกสารลับ".encode("cp874")),
                         "rules.content[0]", Action.CONTENT_RULE_VIOLATION),
}

SCRIPT = b"WScript.Echo(1)\r\n"
ATTACHED_SCRIPT = (TOP + b"Subject: attach test\r\nContent-Type: multipart/mixed; boundary=XX"
                   b"\r\n\r\n--XX\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
                   b"see attachment\r\n--XX\r\nContent-Type: application/octet-stream\r\n"
                   b'Content-Disposition: attachment; filename="=?x-sjis?B?aW52b2ljZS5qcw==?="'
                   b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                   + base64.b64encode(SCRIPT) + b"\r\n--XX--\r\n")


def _send_raw(port, data: bytes):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("a@sender.test", ["user@local.test"], data)


async def _settled(core, home):
    await until(lambda: not list(home.queue("fast").iterdir()), 30)
    await core.events.aflush()


@pytest.mark.parametrize("name", list(BLOCKED))
async def test_text_in_a_label_readers_know_is_matched_and_dropped(tmp_path, sink, nursery,
                                                                    name):
    raw, rule, action = BLOCKED[name]
    home = routed_home(tmp_path, sink, **RULES)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_raw, core.smtp_addresses[0][1], raw)
    await until(lambda: sink.messages or events_of(home, Action.DROPPED), 30)
    await _settled(core, home)
    assert sink.messages == []                  # before the fix: delivered
    [dropped] = events_of(home, Action.DROPPED)
    assert dropped["rule"] == rule
    assert [row["rule"] for row in events_of(home, action)] == [rule]
    assert events_of(home, Action.MALFORMED) == []       # no "unknown charset" on the way
    core.cancel_scope.cancel()


async def test_an_attachment_named_in_a_label_readers_know_is_removed(tmp_path, sink,
                                                                       nursery):
    home = routed_home(tmp_path, sink, **RULES)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_raw, core.smtp_addresses[0][1], ATTACHED_SCRIPT)
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    await _settled(core, home)
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    assert [p.get_filename() for p in parsed.walk() if p.get_filename()] == []
    assert base64.b64encode(SCRIPT) not in received.data
    [deleted] = events_of(home, Action.ATTACHMENT_DELETED)
    assert deleted["rule"] == "filename.patterns" and "invoice.js" in deleted["data"]
    core.cancel_scope.cancel()
