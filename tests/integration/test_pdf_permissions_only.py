"""PDFs that open without a password, end to end under the default settings: smtplib -> the
core on loopback -> a loopback sink. Regression for the antivirus exploration's finding 2:
a PDF with an empty user password and an owner password that only restricts printing and
copying (bank statements, government forms) was deleted as an encrypted container
(`encrypted.action` delete); SPEC §3 encrypted.* is about password-protected files. A PDF
that asks for a password is still deleted.

Such a PDF is scanned decrypted: its streams are still RC4 or AES encrypted, and before
e563fcf the builtin engine only inflated them, so an owner password hid known malware from
it. The engine's own cases (every revision, strings, crypt filters, RC4 key lengths, several
keys, the cost) are tests/unit/scan/test_pdf_streams.py. The PDFs are built by
tests/support/encrypted_pdf.py (checked against qpdf 11.3)."""

from __future__ import annotations

import email
import json
import smtplib
import zlib
from email import policy
from email.message import EmailMessage

import pytest
import trio

from core.app import run_core
from core.pipeline.checks.encrypted import ENCRYPT_TEXT
from core.pipeline.decompose.encryption import pdf_is_encrypted
from shared.events import Action
from shared.guide_texts import DEFAULT_AV_DELETED_TEXT
from shared.settings import defaults
from tests.support.core import routed_home
from tests.support.encrypted_pdf import PAGE_TEXT, encrypted_pdf
from tests.support.mail import EICAR
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio


def _mail(pdfs: dict[str, bytes]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "bank@client.test"
    msg["To"] = "user@local.test"
    msg["Subject"] = "Your statement"
    msg["Message-ID"] = "<statement@client.test>"
    msg.set_content("Your statement is attached.\n")
    for name, data in pdfs.items():
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg


def _send(port: int, msg: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(msg, from_addr="bank@client.test", to_addrs=["user@local.test"])


async def _deliver(tmp_path, sink, nursery, pdfs: dict[str, bytes]):
    """Send `pdfs` through a core with the default encrypted.* settings; the delivered
    files by name, the delivered texts (the body and any text put in for a deleted file)
    and the home."""
    assert defaults()["encrypted.action"] == "delete"
    home = routed_home(tmp_path, sink)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], _mail(pdfs))
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert received.recipients == ["user@local.test"]
    await until(lambda: not list(home.queue("fast").iterdir()))
    await core.events.aflush()
    core.cancel_scope.cancel()
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    files = {part.get_filename(): part.get_content() for part in parsed.iter_attachments()
             if part.get_filename()}
    texts = [part.get_content().strip() for part in parsed.walk()
             if part.get_content_type() == "text/plain"]
    return files, texts, home


@pytest.mark.parametrize("revision", [2, 3, 4, 6], ids=lambda r: f"R{r}")
async def test_pdf_that_opens_without_a_password_is_delivered_intact(tmp_path, sink, nursery,
                                                                     revision):
    statement = encrypted_pdf(revision, user="", owner="bank-owner")
    assert PAGE_TEXT not in statement                       # the page itself is encrypted
    delivered, texts, home = await _deliver(tmp_path, sink, nursery,
                                            {"statement.pdf": statement})
    assert delivered == {"statement.pdf": statement}
    assert texts == ["Your statement is attached."]
    assert events_of(home, Action.ENCRYPTED_CONTAINER) == []
    assert len(events_of(home, Action.DELIVERED)) == 1


@pytest.mark.parametrize("revision", [3, 6], ids=lambda r: f"R{r}")
async def test_pdf_with_a_user_password_is_deleted_beside_one_without(tmp_path, sink, nursery,
                                                                      revision):
    statement = encrypted_pdf(revision, user="", owner="bank-owner")
    protected = encrypted_pdf(revision, user="secret", owner="bank-owner")
    delivered, texts, home = await _deliver(
        tmp_path, sink, nursery, {"statement.pdf": statement, "protected.pdf": protected})
    assert delivered == {"statement.pdf": statement}
    assert texts == ["Your statement is attached.", ENCRYPT_TEXT]
    [event] = events_of(home, Action.ENCRYPTED_CONTAINER)
    assert event["rule"] == "encrypted.action" and event["result"] == "deleted"
    assert json.loads(event["data"])["file"] == "protected.pdf"


@pytest.mark.parametrize("revision", [3, 4, 6], ids=["R3-RC4", "R4-AES", "R6-AES256"])
async def test_eicar_in_an_encrypted_content_stream_is_deleted_and_the_clean_pdf_delivered(
        tmp_path, sink, nursery, revision):
    infected = encrypted_pdf(revision, "", "bank-owner", content=EICAR, flate=True)
    clean = encrypted_pdf(revision, "", "bank-owner", flate=True)
    assert EICAR not in infected and zlib.compress(EICAR) not in infected
    assert not pdf_is_encrypted(infected)            # no encrypted container: it is scanned
    delivered, texts, home = await _deliver(
        tmp_path, sink, nursery, {"statement.pdf": clean, "invoice.pdf": infected})
    assert delivered == {"statement.pdf": clean}                  # byte-identical
    assert texts == ["Your statement is attached.", DEFAULT_AV_DELETED_TEXT]
    [deleted] = events_of(home, Action.FILE_DELETED)
    assert deleted["rule"] == "av.on_unrepairable"
    data = json.loads(deleted["data"])
    assert (data["virus"], data["file"]) == ("Mailmoat.Test.EICAR", "invoice.pdf")
    assert "signature Mailmoat.Test.EICAR (in pdf-stream)" in deleted["info"]
    assert events_of(home, Action.ENCRYPTED_CONTAINER) == []
