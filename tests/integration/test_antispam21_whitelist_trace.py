"""antispam21 B1, end to end: the core over SMTP, a DNS server and a sink on loopback. Mail a
whitelist let past the custom blacklist, an RBL listing under "reject" and the heuristic
engine is delivered untouched, and each check that stood aside wrote its own event with the
result "whitelisted" naming the whitelist entry — counted as no block on the Status page nor
as spam in the summary report. Before, the detail report had only accepted, delivered and
completed for such mail: nothing said which whitelist entry let it past which check."""

from __future__ import annotations

import email

import pytest
import trio

from core.app import run_core
from core.smtp.rbl import query_name
from shared import db
from shared.events import Action
from shared.report import summarise
from shared.report_time import ReportRange
from tests.integration.test_antispam_rbl import ZONE, _home, _send
from tests.support.dnsserver import DnsServer
from tests.support.waiting import events_of, until

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
EVERYTHING = ReportRange(0, 4_000_000_000)


@pytest.fixture
def dns():
    with DnsServer() as server:
        yield server


async def test_whitelisted_mail_passes_every_check_with_an_event_naming_the_entry(
        tmp_path, sink, dns, nursery):
    dns.add_a(query_name("127.0.0.1", ZONE), "127.0.0.2")
    home = _home(tmp_path, sink, dns, rbl__action="reject", whitelist__custom__enabled=True,
                 whitelist__custom=["@friend.test"], blacklist__enabled=True,
                 blacklist__entries=["@friend.test"], heuristic__enabled=True)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(_send, port, "boss@friend.test", f"Deal {GTUBE}")
    [delivered] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert delivered.sender == "boss@friend.test"
    assert email.message_from_bytes(delivered.data)["Subject"] == f"Deal {GTUBE}"   # unmarked
    await until(lambda: events_of(home, Action.COMPLETED), flush=core.events.aflush)
    traces = {}
    for action in (Action.SENDER_BLOCKED, Action.SPAM_LIST_BLOCK, Action.HEURISTIC_SPAM):
        [row] = events_of(home, action)
        traces[action] = row
        assert row["result"] == "whitelisted", action
        assert row["rule"] == "whitelist.custom @friend.test", action
        assert row["sender"] == "boss@friend.test" and row["queue_id"], action
        assert "whitelisted by whitelist.custom @friend.test" in row["info"], action
    assert "listed in bl.test" in traces[Action.SPAM_LIST_BLOCK]["info"]
    assert "rejected at MAIL FROM" in traces[Action.SPAM_LIST_BLOCK]["info"]
    assert "matches blacklist entry '@friend.test'" in traces[Action.SENDER_BLOCKED]["info"]
    # no block, no spam: the Status page's counters and the summary report
    for counter in ("spam_blacklist", "spam_rbl", "spam_heuristic", "spam_messages"):
        assert core.counters.values[counter] == 0, counter
    conn = db.connect(home.db)
    try:
        summary = summarise(conn, EVERYTHING, premium=True)
    finally:
        conn.close()
    assert summary.figure("premium", "Spam Detected") == 0
    assert summary.figure("message", "Messages Delivered") == 1
    core.cancel_scope.cancel()
