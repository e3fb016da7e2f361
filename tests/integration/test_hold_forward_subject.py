"""Hold-queue "Forward copies" with a new Subject, end to end: `mailmoat queue forward ...
--hold --subject S` (the console's Hold Queue form makes the same request) -> the core on
loopback -> a loopback sink that offers neither SMTPUTF8 nor 8BITMIME.

i18n finding 8: a subject that is not ASCII was written as raw 8-bit header octets and sent
without SMTPUTF8 or 8BITMIME, while a policy forward writes RFC 2047 encoded-words. Both
now replace the Subject the same way (HeaderEditor.replace_subject).
"""

from __future__ import annotations

import email
import re
import smtplib
import subprocess
import sys
from email import policy

import pytest
import trio

from core.app import run_core
from shared.spool import Envelope, Spool, new_queue_id
from tests.support.core import make_home

pytestmark = pytest.mark.trio

SUBJECT = "Weitergeleitet: Prüfung – 請求書"


def _hold(home, data: bytes) -> str:
    """Put a message into hold/ through the spool's own accept path, as the core would."""
    spool = Spool(home.spool)
    queue_id = new_queue_id()
    incoming = spool.open_incoming(queue_id)
    incoming.write(data)
    spool.commit([incoming.prepare(Envelope.new(queue_id, "a@client.test",
                                                ["user@local.test"],
                                                hold_reason="suspect_message",
                                                processed=True))], "hold")
    return queue_id


def _subject_fields(data: bytes) -> list[bytes]:
    """The raw Subject fields of the header section, unfolded."""
    head = data.split(b"\r\n\r\n", 1)[0]
    return [re.sub(rb"\r\n[ \t]", b" ", value) for value in re.findall(
        rb"(?im)^Subject:[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head)]


def _mailmoat(home, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args, "--home", str(home.root)],
                          capture_output=True, text=True, timeout=60)


async def test_hold_forward_subject_is_encoded_as_a_policy_forward_encodes_it(
        tmp_path, make_sink, nursery):
    seven_bit = make_sink()
    seven_bit.without_extensions = {"SMTPUTF8", "8BITMIME"}
    home = make_home(tmp_path, routing__local=[
        {"match": "no8.test", "relay": "127.0.0.1", "port": seven_bit.port},
        {"match": "local.test", "relay": "127.0.0.1", "port": seven_bit.port}],
        subject__enabled=True, subject__lines=["*ausverkauf*"], subject__action="forward",
        subject__forward_to="pruefer@no8.test", subject__forward_subject=SUBJECT)
    _hold(home, b"From: a@client.test\r\nSubject: held one\r\nTo: user@local.test\r\n"
                b"Subject: a second Subject\r\n\r\nbody\r\n")
    core = await nursery.start(run_core, home)

    forward = await trio.to_thread.run_sync(lambda: _mailmoat(
        home, "queue", "forward", "pruefer@no8.test", "--hold", "--subject", SUBJECT))
    assert forward.returncode == 0, forward.stderr
    [held_copy] = await trio.to_thread.run_sync(seven_bit.wait_for, 1)
    assert held_copy.recipients == ["pruefer@no8.test"]
    assert held_copy.data.isascii()                   # nothing here needs 8BITMIME
    assert not [p for p in held_copy.mail_params if p.startswith(("SMTPUTF8", "BODY="))]
    [field] = _subject_fields(held_copy.data)         # one Subject, in place of both
    assert field.startswith(b"=?utf-8?")
    parsed = email.message_from_bytes(held_copy.data, policy=policy.default)
    assert parsed["Subject"] == SUBJECT and b"body\r\n" in held_copy.data

    def send():
        with smtplib.SMTP("127.0.0.1", core.smtp_addresses[0][1], timeout=30) as client:
            client.sendmail("a@client.test", ["user@local.test"],
                            b"Subject: Grosser Ausverkauf\r\n\r\nhi\r\n")

    await trio.to_thread.run_sync(send)
    [_, policy_copy] = await trio.to_thread.run_sync(seven_bit.wait_for, 2)
    assert policy_copy.recipients == ["pruefer@no8.test"]
    assert _subject_fields(policy_copy.data) == [field]   # the same field, byte for byte
    core.cancel_scope.cancel()


async def test_a_blank_subject_keeps_the_message_s_own(tmp_path, make_sink, nursery):
    """`--subject ""` emptied the Subject of every copy; the console's blank field keeps it
    (regress11 finding 7): a blank subject means "no new subject" everywhere."""
    sink = make_sink()
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}])
    _hold(home, b"From: a@client.test\r\nSubject: held one\r\nTo: user@local.test\r\n\r\nb\r\n")
    await nursery.start(run_core, home)
    forward = await trio.to_thread.run_sync(lambda: _mailmoat(
        home, "queue", "forward", "sec@local.test", "--hold", "--subject", " "))
    assert forward.returncode == 0, forward.stderr
    [copy] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert _subject_fields(copy.data) == [b"held one"]
