"""PDFs that open with the empty user password are scanned decrypted. Regression for a hole
8223955 opened: such a PDF (an owner password that only restricts printing or copying) is no
encrypted container since then and is delivered, but its streams and strings are still
encrypted (RC4 or AES) and the builtin engine only inflated streams, so anyone could hide known
malware from it by adding an owner password. Before 8223955 such files were deleted.

End to end under the default settings (smtplib -> the core on loopback -> a loopback sink); the
engine's own cases (every revision, strings, crypt filters, RC4 key lengths, several keys, the
cost) are tests/unit/scan/test_pdf_streams.py. The PDFs are built by
tests/support/encrypted_pdf.py (checked against qpdf 11.3: `qpdf --password= --decrypt` shows
the same content)."""

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
from core.pipeline.decompose.encryption import pdf_is_encrypted
from shared.events import Action
from shared.guide_texts import DEFAULT_AV_DELETED_TEXT
from tests.support.core import routed_home
from tests.support.encrypted_pdf import encrypted_pdf
from tests.support.waiting import events_of, until

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
DETECTION = "Mailmoat.Test.EICAR"


def _mail(pdfs: dict[str, bytes]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "bank@client.test"
    msg["To"] = "user@local.test"
    msg["Subject"] = "Your statements"
    msg["Message-ID"] = "<statements@client.test>"
    msg.set_content("Your statements are attached.\n")
    for name, data in pdfs.items():
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg


def _send(port: int, msg: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(msg, from_addr="bank@client.test", to_addrs=["user@local.test"])


@pytest.mark.trio
@pytest.mark.parametrize("revision", [3, 4, 6], ids=["R3-RC4", "R4-AES", "R6-AES256"])
async def test_eicar_in_an_encrypted_content_stream_is_deleted_and_the_clean_pdf_delivered(
        tmp_path, sink, nursery, revision):
    infected = encrypted_pdf(revision, "", "bank-owner", content=EICAR, flate=True)
    clean = encrypted_pdf(revision, "", "bank-owner", flate=True)
    assert EICAR not in infected and zlib.compress(EICAR) not in infected
    assert not pdf_is_encrypted(infected)            # no encrypted container: it is scanned
    home = routed_home(tmp_path, sink)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1],
                                  _mail({"statement.pdf": clean, "invoice.pdf": infected}))
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    await until(lambda: not list(home.queue("fast").iterdir()))
    await core.events.aflush()
    core.cancel_scope.cancel()
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    files = {part.get_filename(): part.get_content() for part in parsed.iter_attachments()
             if part.get_filename()}
    assert files == {"statement.pdf": clean}                      # byte-identical
    texts = [part.get_content().strip() for part in parsed.walk()
             if part.get_content_type() == "text/plain"]
    assert texts == ["Your statements are attached.", DEFAULT_AV_DELETED_TEXT]
    [deleted] = events_of(home, Action.FILE_DELETED)
    assert deleted["rule"] == "av.on_unrepairable"
    data = json.loads(deleted["data"])
    assert (data["virus"], data["file"]) == (DETECTION, "invoice.pdf")
    assert f"signature {DETECTION} (in pdf-stream)" in deleted["info"]
    assert events_of(home, Action.ENCRYPTED_CONTAINER) == []
