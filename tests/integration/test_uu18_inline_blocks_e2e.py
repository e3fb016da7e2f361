"""A uuencoded file written into a message text, end to end: smtplib -> the core on loopback
(real worker processes) -> a sink. A blocked name (run.exe) and EICAR in such blocks are each
removed from the text, replaced by the policy's text, with an attachment_deleted and a
file_deleted event naming the file; the message is delivered and the rest of the text
arrives as sent (content18 B5: run.exe was delivered with no event, and the EICAR message was
dropped whole as av.outer_message)."""

from __future__ import annotations

import binascii
import json
import smtplib

import pytest
import trio

from core.app import run_core
from shared.events import Action
from tests.support.core import routed_home
from tests.support.mail import EICAR
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

EXE = b"MZ\x90\x00" + b"\x00" * 60 + b"PE\x00\x00" + b"\x00" * 200


def _uu(name: str, data: bytes) -> bytes:
    lines = b"".join(binascii.b2a_uu(data[i:i + 45]).replace(b"\n", b"\r\n")
                     for i in range(0, len(data), 45))
    return b"begin 644 " + name.encode() + b"\r\n" + lines + b"`\r\nend"


BODY = (b"see below\r\n\r\n" + _uu("run.exe", EXE) + b"\r\n\r\nand this one\r\n\r\n"
        + _uu("x.bin", EICAR) + b"\r\n\r\nregards\r\n")
RAW = (b"From: sender@client.test\r\nTo: user@local.test\r\nSubject: uu\r\n"
       b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + BODY)


def _send(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("sender@client.test", ["user@local.test"], RAW)


async def test_blocks_in_the_text_are_removed_by_name_and_by_virus(tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, filename__enabled=True, filename__patterns=["*.exe"])
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1])
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    body = received.data.split(b"\r\n\r\n", 1)[1]
    assert body == (b"see below\r\n\r\nAn attachment of this message violated the attachment "
                    b"policy and has been deleted.\r\n\r\nand this one\r\n\r\nAn attachment "
                    b"of this message was infected with a virus and has been deleted.\r\n\r\n"
                    b"regards\r\n")
    await until(lambda: not list(home.queue("fast").iterdir()), 30, flush=core.events.aflush)
    await core.events.aflush()
    assert [json.loads(r["data"])["file"] for r in events_of(home, Action.ATTACHMENT_DELETED)] \
        == ["run.exe"]
    [deleted] = events_of(home, Action.FILE_DELETED)
    assert (deleted["rule"], json.loads(deleted["data"])["file"]) == \
        ("av.on_unrepairable", "x.bin")
    core.cancel_scope.cancel()


# --- where a block ends (review18 R1, R2) ---------------------------------------------------

HIDDEN = (b"From: sender@client.test\r\nTo: user@local.test\r\nSubject: hidden\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
          b"hello\r\nbegin 644 notes\r\n" + EICAR + b"\r\nend\r\nbye\r\n")
LETTER_TEXT = (b"Hi Bob,\r\n" + _uu("run.exe", EXE).replace(b"`\r\nend", b"")
               + b"\r\n\r\nThe minutes of Monday's meeting follow.\r\nRegards, Alice\r\n")
LETTER = (b"From: sender@client.test\r\nTo: user@local.test\r\nSubject: minutes\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + LETTER_TEXT)


def _send_each(port: int, messages) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for raw in messages:
            client.sendmail("sender@client.test", ["user@local.test"], raw)


async def test_a_begin_line_hides_nothing_and_takes_no_letter_with_it(tmp_path, sink, nursery):
    # EICAR behind a "begin" line whose body is not uuencode was scanned by no one and
    # delivered (R1); a block with no "end" line took the rest of the letter with it (R2)
    home = routed_home(tmp_path, sink, filename__enabled=True, filename__patterns=["*.exe"])
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_each, core.smtp_addresses[0][1], [HIDDEN, LETTER])
    await until(lambda: not list(home.queue("fast").iterdir()), 30, flush=core.events.aflush)
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert received.data.split(b"\r\n\r\n", 1)[1] == (
        b"Hi Bob,\r\nAn attachment of this message violated the attachment policy and has "
        b"been deleted.\r\n\r\n\r\nThe minutes of Monday's meeting follow.\r\nRegards, Alice\r\n")
    [dropped] = events_of(home, Action.DROPPED)
    assert dropped["rule"] == "av.outer_message"
    assert len(sink.messages) == 1
    core.cancel_scope.cancel()
