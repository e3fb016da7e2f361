"""Events are read in time order, not id order (shared/events.py rules; events findings C1,
C10): a real SMTP client on loopback → the core in-process → its events table, read back
by the detail report's query (shared/report.py) and by the core's alert engine.

The first refused recipient of a transaction is written when the transaction ends, stamped
with the time of its refusal (core/smtp/transaction.py), so a later event of the same
session, the second refused recipient, written at once, has the lower id. The detail report,
a page of it and its streamed export show the refusals in the order they happened. The
alert engine, the one reader by id, reads the rows written after its cursor whatever their
time: a row stamped before the newest one it has read is not skipped.
"""

from __future__ import annotations

import smtplib

import pytest
import trio

from core.app import run_core
from shared import db
from core.notify import AlertEngine
from shared.events import RECIPIENT_REFUSED, Action, EventWriter
from shared.report import DetailFilter, ReportRange, detail_page, iter_detail
from tests.support.clock import FakeTime
from tests.support.core import make_home, stored_settings
from tests.support.waiting import at_least

pytestmark = pytest.mark.trio

LOCAL = {"match": "local.test", "relay": "127.0.0.1", "port": 9}   # nothing is delivered
EVERYTHING = ReportRange(0, 4_000_000_000, "UTC")


def _two_refusals_then_rset(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.test")
        assert client.mail("a@client.test")[0] == 250
        assert client.rcpt("first@outside.test")[0] == 550     # relay denied
        assert client.rcpt("second@outside.test")[0] == 550
        assert client.rset()[0] == 250                          # settles the first


async def test_a_refusal_written_after_later_events_reads_in_time_order(tmp_path, nursery):
    home = make_home(tmp_path, routing__local=[LOCAL])
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_two_refusals_then_rset, core.smtp_addresses[0][1])
    rows = await at_least(home, Action.REJECTED, 2, flush=core.events.aflush)
    by_id = [row["recipients"] for row in rows]
    # written in this order (ids), though the first refusal happened first (time)
    assert by_id == ["second@outside.test", "first@outside.test"]
    first, second = rows[1], rows[0]
    assert first["time"] < second["time"]
    assert first["result"] == "550" and second["result"] == RECIPIENT_REFUSED

    flt = DetailFilter(EVERYTHING, frozenset({Action.REJECTED}))
    conn = db.connect(home.db, readonly=True)
    try:
        streamed = [row.recipients for row in iter_detail(conn, flt, batch=1)]
        page = detail_page(conn, flt, size=1)
        after = detail_page(conn, flt, size=1, after=page.next_key)
        back = detail_page(conn, flt, size=1, before=after.previous_key)
    finally:
        conn.close()
    in_time_order = ["first@outside.test", "second@outside.test"]
    assert streamed == in_time_order
    assert [page.rows[0].recipients, after.rows[0].recipients] == in_time_order
    assert back.rows[0].recipients == "first@outside.test"
    assert not after.has_next
    core.cancel_scope.cancel()


async def test_the_alert_engine_reads_a_row_stamped_before_the_newest_it_has_read(tmp_path):
    """Its cursor is an id: an alert's event written after the newest row the engine has
    read but stamped before it (another process's batch, or a back-dated event) is mailed."""
    home = make_home(tmp_path, admin__emails=["a@local.test"], alerts__unauthorized_access=True,
                     alerts__smtp_protocol_violation=True)
    sent: list = []

    async def submit(sender, recipients, data, kind):
        sent.append(data)
        return f"Q{len(sent)}"

    core, console = EventWriter(home.db, "core"), EventWriter(home.db, "console")
    engine = AlertEngine(home.db, home.run, lambda: stored_settings(home), core, submit,
                         lambda: "mm.test", clock=FakeTime())
    await engine.load()
    newest = console.record(Action.UNAUTHORIZED_ACCESS, client_ip="192.0.2.1")
    console.flush()
    assert len(await engine.poll_once()) == 1
    core.record(Action.PROTOCOL_VIOLATION, client_ip="192.0.2.2", rule="bad_sequence",
                at=newest.time - 60)
    core.flush()
    assert len(await engine.poll_once()) == 1
    assert b"192.0.2.2" in sent[1]
    core.close()
    console.close()
