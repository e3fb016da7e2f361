"""Alerts and notifications are spooled with CRLF line ends, as bounces are
(core/delivery/bounce.py rule 7): the SIZE= they are announced with is the octets sent.

outbound19 finding B2: core/notify.py compose_mail wrote bare LFs; delivery sent them as
CRLF, so a Suspect Message alert went out as `MAIL FROM:<> SIZE=757` and 776 octets, and
the sizes in events and queue lists were the LF figure too. review19 r2 D2: every generator
had to remember it; QueueManager.submit_generated, where all generated mail enters the
spool, now makes every line end CRLF. T2: bodies that already hold CRLF (a template typed
in a browser's textarea) or a lone CR.
"""

from __future__ import annotations

import re

import pytest
import trio

from core.app import run_core
from core.notify import compose_mail
from shared.events import Action, EventWriter
from shared.settings import defaults
from tests.integration.test_queue import Harness, routes_to
from tests.support.core import routed_home

_NOT_CRLF = re.compile(rb"(?<!\r)\n|\r(?!\n)")     # a bare LF or a lone CR


@pytest.mark.parametrize("recipient, body", [
    ("admin@local.test", "line one\nline two\n\nline four\n"),
    ("müller@local.test", "Grüße\nzweite Zeile\n" + "lang " * 40 + "\n"),
    ("admin@local.test", "typed in a textarea\r\nsecond line\r\n\r\n.\r\n"),
    ("müller@local.test", "Grüße\r\nzweite Zeile\r\n" + "é" * 300 + "\r\n"),
    ("admin@local.test", "a lone\rCR and\r\na CRLF\n" + "x" * 1200 + "\n"),
])
def test_a_notification_is_composed_with_crlf_line_ends(recipient, body):
    raw = compose_mail(defaults(), "mm.test", [recipient], "Alert: something", body, "alert")
    assert _NOT_CRLF.search(raw) is None
    assert raw.count(b"\r\n") > 5


async def test_generated_mail_is_spooled_with_crlf_whatever_its_generator_wrote(
        tmp_path, sink, nursery):
    """review19 r2 D2: a generator that writes bare LFs or a lone CR (as compose_mail did)
    no longer spools a message whose size is not the octets sent."""
    h = Harness(tmp_path, routes_to(("admin.test", sink)))
    manager = h.manager()
    await nursery.start(manager.run)
    await manager.submit_generated("", ["admin@admin.test"],
                                   b"Subject: low disk\n\nfirst\nsecond\r\nthird\rend\n",
                                   kind="alert")
    [mail] = await sink.await_messages(1)
    assert mail.data == b"Subject: low disk\r\n\r\nfirst\r\nsecond\r\nthird\r\nend\r\n"
    [size] = [int(p.partition("=")[2]) for p in mail.mail_params if p.upper().startswith("SIZE=")]
    assert size == len(mail.data)


async def test_an_alert_is_announced_with_the_size_it_is_sent_with(tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, admin__emails=["admin@local.test"])
    core = await nursery.start(run_core, home)

    def console_event():
        writer = EventWriter(home.db, "console")
        writer.record(Action.UNAUTHORIZED_ACCESS, client_ip="192.0.2.9", info="a\nb")
        writer.close()

    await trio.to_thread.run_sync(console_event)
    [mail] = await trio.to_thread.run_sync(sink.wait_for, 1)
    [size] = [int(p.partition("=")[2]) for p in mail.mail_params if p.upper().startswith("SIZE=")]
    assert size == len(mail.data)           # the octets sent, each line's CRLF included
    core.cancel_scope.cancel()
