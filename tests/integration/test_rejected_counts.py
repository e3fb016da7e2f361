"""Messages Rejected counts messages (guide Tables 7-1 and 7-2: "rejected because … an
anti-relay violation occurs; the configured message size has been exceeded"), end to end:
smtplib → the core on loopback → the events it writes → the summary report and the Status
page's Rejected counter (reports finding 3).

Before: a `SIZE=` over size.max_mb refused at MAIL was a protocol_violation, counted by
neither; one relay-denied recipient of a message that was accepted and delivered added 1;
a transaction naming three relay-denied recipients added 3.
"""

from __future__ import annotations

import json
import smtplib

import pytest
import trio

from core.app import run_core
from shared import db
from shared.events import RECIPIENT_REFUSED, Action
from shared.report import DetailFilter, action_filter, iter_detail, summarise
from shared.report_time import ReportRange
from tests.support.core import make_home
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

EVERYTHING = ReportRange(0, 4_000_000_000)
BODY = b"From: a@client.test\r\nTo: a@local.test\r\nSubject: partly\r\n\r\nhello\r\n"


def _message_figures(home) -> dict[str, int]:
    conn = db.connect(home.db)
    try:
        return dict(summarise(conn, EVERYTHING, premium=False).section("message").rows)
    finally:
        conn.close()


def _rejected_in_detail_report(home) -> list:
    conn = db.connect(home.db)
    try:
        return list(iter_detail(conn, DetailFilter(EVERYTHING, action_filter(["rejected"]))))
    finally:
        conn.close()


async def _core(nursery, home):
    core = await nursery.start(run_core, home)
    return core, core.smtp_addresses[0][1]


async def test_a_size_refused_at_mail_is_a_rejected_message_as_after_data(tmp_path, nursery):
    home = make_home(tmp_path, size__enabled=True, size__max_mb=1, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": 9}])
    core, port = await _core(nursery, home)

    def attempt():
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo("client.test")
            declared = client.mail("big@client.test", [f"SIZE={2 << 20}"])
            client.rset()
            client.mail("big@client.test")
            client.rcpt("user@local.test")
            client.putcmd("data")
            client.getreply()
            client.send(b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1100 + b".\r\n")
            return declared, client.getreply()

    declared, after_data = await trio.to_thread.run_sync(attempt)
    assert declared[0] == 552 and declared[1].startswith(b"5.3.4")     # the reply is kept
    assert after_data[0] == 552
    await core.events.aflush()
    rejected = events_of(home, Action.REJECTED)
    assert [(row["rule"], row["result"]) for row in rejected] == [("size.max_mb", "552")] * 2
    assert "SIZE=2097152" in rejected[0]["info"]
    assert not events_of(home, Action.PROTOCOL_VIOLATION)
    assert core.counters.values["rejected"] == 2
    assert core.counters.values["protocol_violations"] == 0
    assert _message_figures(home)["Messages Rejected"] == 2
    core.cancel_scope.cancel()


@pytest.mark.parametrize("recipients", [("a@local.test", "x@third.test"),
                                        ("x@third.test", "a@local.test")])
async def test_a_message_accepted_for_some_recipients_is_not_a_rejected_message(
        tmp_path, sink, nursery, recipients):
    # the refused recipient may come first: only the transaction's end says it went on
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}])
    core, port = await _core(nursery, home)

    def send():
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            return client.sendmail("a@client.test", list(recipients), BODY)

    refused = await trio.to_thread.run_sync(send)
    assert list(refused) == ["x@third.test"] and refused["x@third.test"][0] == 550
    [delivered] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert delivered.recipients == ["a@local.test"]
    await core.events.aflush()
    [row] = events_of(home, Action.REJECTED)
    assert (row["recipients"], row["rule"], row["result"]) == \
        ("x@third.test", "relay.allowed", RECIPIENT_REFUSED)
    assert json.loads(row["data"]) == {"reply": "550"}
    [shown] = _rejected_in_detail_report(home)          # the detail report still has it
    assert shown.recipients == "x@third.test" and shown.sender == "a@client.test"
    assert core.counters.values["rejected"] == 0
    figures = _message_figures(home)
    assert figures["Messages Rejected"] == 0 and figures["Messages Accepted"] == 1
    core.cancel_scope.cancel()


async def test_a_transaction_with_every_recipient_refused_is_one_rejected_message(tmp_path,
                                                                                 nursery):
    home = make_home(tmp_path)
    core, port = await _core(nursery, home)

    def attempts():
        outcomes = []
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            for recipients in (["x@third.test", "y@third.test", "z@fourth.test"],
                               ["w@third.test"]):
                try:
                    client.sendmail("a@client.test", recipients, BODY)
                except smtplib.SMTPRecipientsRefused as exc:
                    outcomes.append(sorted(code for code, _ in exc.recipients.values()))
        return outcomes

    assert await trio.to_thread.run_sync(attempts) == [[550, 550, 550], [550]]
    await until(lambda: len(events_of(home, Action.DISCONNECTED)) == 1)
    await core.events.aflush()
    rows = events_of(home, Action.REJECTED)
    # the first refusal waits for the transaction's end; the later ones are written at once
    assert sorted((row["recipients"], row["result"]) for row in rows) == [
        ("w@third.test", "550"), ("x@third.test", "550"),
        ("y@third.test", RECIPIENT_REFUSED), ("z@fourth.test", RECIPIENT_REFUSED)]
    assert len(_rejected_in_detail_report(home)) == 4
    assert core.counters.values["rejected"] == 2
    assert _message_figures(home)["Messages Rejected"] == 2
    core.cancel_scope.cancel()
