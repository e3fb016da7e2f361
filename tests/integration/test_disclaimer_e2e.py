"""The disclaimer end to end: smtplib -> the core on loopback (real worker processes) -> a
loopback sink. What the next hop receives: the text as sent plus the disclaimer, and
BODY=8BITMIME whenever the rewritten content is 8-bit (hostile-mime findings 2 and 4)."""

from __future__ import annotations

import email
import smtplib
from email import policy

import pytest
import trio

from core.app import run_core
from tests.support.core import make_home

pytestmark = pytest.mark.trio

DISCLAIMER = "\u2026 \u00dcn\u00efc\u00f6d\u00e9 disclaimer \u2014 test."
HEAD = (b"From: a@client.test\r\nTo: x@elsewhere.test\r\nSubject: plain\r\n"
        b"MIME-Version: 1.0\r\n")


def _home(tmp_path, sink):
    return make_home(tmp_path, routing__default={"host": "127.0.0.1", "port": sink.port},
                     relay__mode="allow", disclaimer__enabled=True,
                     disclaimer__text=DISCLAIMER)


def _send(port: int, data: bytes, options=()) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("a@client.test", ["x@elsewhere.test"], data, mail_options=list(options))


async def test_a_7bit_message_made_8bit_by_the_disclaimer_goes_out_with_body_8bitmime(
        tmp_path, sink, nursery):
    """The client sent ASCII, so no BODY parameter; the UTF-8 disclaimer appended to its
    8bit part makes the content 8-bit, and RFC 6152 §3 wants BODY=8BITMIME for that."""
    core = await nursery.start(run_core, _home(tmp_path, sink))
    data = (HEAD + b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\nHello.\r\n")
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], data)
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert not received.data.isascii()
    assert "BODY=8BITMIME" in [p.upper() for p in received.mail_params]
    body = email.message_from_bytes(received.data, policy=policy.default).get_body(("plain",))
    assert body.get_content().replace("\r\n", "\n") == "Hello.\n\n" + DISCLAIMER + "\n"
    core.cancel_scope.cancel()


async def test_utf8_text_with_a_stray_byte_arrives_as_sent_plus_the_disclaimer(
        tmp_path, sink, nursery):
    core = await nursery.start(run_core, _home(tmp_path, sink))
    text = "Привет, коллеги! Отчёт готов.\r\n".encode() + b"Stray byte: \xd1f\r\n"
    data = (HEAD + b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text)
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], data, ["BODY=8BITMIME"])
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    parsed = email.message_from_bytes(received.data, policy=policy.compat32)
    assert parsed.get_payload(decode=True) == text + b"\r\n" + DISCLAIMER.encode() + b"\r\n"
    core.cancel_scope.cancel()
