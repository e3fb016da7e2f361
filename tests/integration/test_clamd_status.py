"""Whether clamd answers reaches the Status page (guide45 finding 3): with av.engine clamd at
an address nothing listens on, every clean message is held (scan.unprocessable, right) and the
Status page's Virus scanning row said only "Enabled"; it now says clamd is not answering,
since when, why and that mail is held, and "Enabled" again once clamd answers.

smtplib -> the core on loopback (real worker processes: what clamd said crosses from the
worker to the core with the message's outcome) -> a sink; a real clamd (tests/support/clamd.py)
started on the port the settings name once the first message is held; the Status page through
the console test client on the same data home. The clamd client's own notes (core/scan/clamd.py
rule 6) against the same clamd and a port nothing listens on.
"""

from __future__ import annotations

import re
import smtplib
import time
from email.message import EmailMessage

import pytest
import trio

from core.app import run_core
from core.scan.clamd import ClamdEngine, ScanError
from tests.support.clamd import Clamd, free_port
from tests.support.console import console_on
from tests.support.core import routed_home
from tests.support.waiting import next_snapshot, until
from tests.unit.scan.support import SHIPPED

WAIT_SECONDS = 60.0


def _send(port: int, subject: str) -> None:
    msg = EmailMessage()
    msg["From"] = "sender@client.test"
    msg["To"] = "user@local.test"
    msg["Subject"] = subject
    msg.set_content("hello\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(msg, from_addr="sender@client.test", to_addrs=["user@local.test"])


def _virus_scanning_row(home) -> str:
    with console_on(home) as console:
        page = console.get("/status/").get_data(as_text=True)
    row = re.search(r"<th scope=\"row\">Virus scanning</th><td[^>]*>([^<]*)</td>", page)
    assert row, page[:3000]
    return row.group(1)


async def test_status_page_says_clamd_is_not_answering_and_mail_is_held(
        tmp_path, sink, nursery):
    clamd = Clamd(tmp_path, SHIPPED.glob("*.ndb"))      # its port: nothing listens yet
    home = routed_home(tmp_path, sink, av__engine="clamd", av__clamd__address=clamd.address,
                       scan__unprocessable="hold")
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    try:
        await trio.to_thread.run_sync(_send, port, "while clamd is down")
        await until(lambda: list(home.queue("hold").iterdir()), WAIT_SECONDS)
        await next_snapshot(home, WAIT_SECONDS)
        row = _virus_scanning_row(home)
        assert re.fullmatch(
            rf"Enabled — clamd at {re.escape(clamd.address)} not answering since "
            r"\d\d:\d\d \(unreachable: Connection refused; mail is held\)", row), row

        await trio.to_thread.run_sync(clamd.start)
        await trio.to_thread.run_sync(_send, port, "once clamd answers")
        [delivered] = await sink.await_messages(1, timeout=WAIT_SECONDS)
        assert b"once clamd answers" in delivered.data
        await next_snapshot(home, WAIT_SECONDS)
        assert _virus_scanning_row(home) == "Enabled"
    finally:
        core.cancel_scope.cancel()
        await trio.to_thread.run_sync(clamd.stop)


def test_clamd_client_notes_whether_clamd_answered(tmp_path):
    from core.scan.clamd import take_contact

    nobody = f"127.0.0.1:{free_port()}"
    take_contact()
    with pytest.raises(ScanError, match="unreachable"):
        ClamdEngine(nobody).scan(b"x")
    contact = take_contact()
    assert contact.address == nobody and not contact.answered
    assert contact.problem == "unreachable: Connection refused"
    assert take_contact() is None                   # taken once
    # the message's own time running out says nothing about clamd (clamd.py rule 6)
    with pytest.raises(ScanError, match="time left"):
        ClamdEngine(nobody, deadline=time.monotonic() - 1).scan(b"x")
    assert take_contact() is None
    with Clamd(tmp_path, SHIPPED.glob("*.ndb")) as clamd:
        take_contact()
        assert ClamdEngine(clamd.address).scan(b"clean") is None
        contact = take_contact()
        assert contact.address == clamd.address and contact.answered and contact.problem == ""
