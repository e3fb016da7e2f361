"""The Status page and the summary report count the same infections, end to end: smtplib →
the core on loopback (real worker processes) with signed virus definitions that name a test
worm a mass mailer, then the console's Status page and its Reporting › Summary page over the
same time (events finding C7).

Guide Table 7-1 (Status, Infections: "Deleted: Number of files that had viruses deleted")
and Table 7-4 (summary: "Infections deleted: Number of files that contained viruses that were
deleted") describe one figure. A mass-mailer cleanup deletes the infected file with its
message. Before, the summary counted it under Infections Deleted and the Status page did not
(only under Messages › Mass mailers deleted): "Deleted 0" beside "Infections Deleted 1".
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest
import trio

from core.app import run_core
from shared.events import Action
from tests.integration.test_spam_figures_agree import _figures, _pages, _section
from tests.support.core import routed_home
from tests.support.definitions import install_signature
from tests.support.waiting import events_of, next_snapshot, until

pytestmark = pytest.mark.trio

WORM = b"MAILMOAT-TEST-MASS-MAILER-WORM-0002"
WORM_NAME = "Test.Figures@mm"


def _send_worm(port: int) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@client.test", "user@local.test", "worm"
    msg.set_content("see attached")
    msg.add_attachment(b"xx" + WORM + b"yy", maintype="application",
                       subtype="octet-stream", filename="worm.bin")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(msg)


async def test_status_page_and_summary_report_count_a_mass_mailer_as_an_infection_deleted(
        tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink)
    install_signature(home, WORM_NAME, WORM)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_worm, core.smtp_addresses[0][1])
    await until(lambda: events_of(home, Action.MASS_MAILER_CLEANUP)
                and events_of(home, Action.DROPPED), 60, flush=core.events.aflush)
    await next_snapshot(home, 60)                       # counts the cleanup
    status, summary = await trio.to_thread.run_sync(_pages, home)
    infection = _figures(_section(summary, "infection"))
    assert status["Mass mailers deleted"] == 1          # the message (Messages section)
    assert status["Deleted"] == infection["Infections Deleted"] == 1      # the file
    assert status["Viruses repaired, deleted and logged"] == infection["Total"] == 1
    assert _figures(_section(summary, "viruses"))[WORM_NAME] == 1
    core.cancel_scope.cancel()
