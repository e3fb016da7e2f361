"""Spam delivered marked reads "delivered", not "logged" (tester guide19, C5): smtplib → the
core on loopback (real worker processes) → a loopback sink, then the events it wrote.

SPEC §5's "log" leaves the message as it is and writes the event; spam below the drop and
forward scores is delivered with the Heuristic Engine's marks ([Spam], X-Bulk), so its
`heuristic_spam` / `spam_rule_violation` event said result "logged" and data action "log"
for mail that was changed — an administrator could read it as "left untouched". The finding
asks for "deliver", as the guide says ("All messages tagged as spam will be delivered
unless ..."); a message another check drops reads "superseded", as every finding whose
action did not happen does, and one another check forwards "forwarded": the copies carry the
marks (review19 D5). The Status page counts the events as before.
"""

from __future__ import annotations

import email
import json
import smtplib
from email import policy

import trio

from core.app import run_core
from shared import db
from shared.events import Action
from tests.support.core import routed_home
from tests.support.waiting import until

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SPAM_RULE = {"enabled": True, "match": "any", "terms": ["cheap pills"], "none_of": []}


def _send(port: int, sender: str, subject: str, body: str) -> None:
    text = (f"From: {sender}\r\nTo: user@local.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '')}@client.test>\r\n\r\n{body}\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, ["user@local.test"], text)


def _results(home, action: Action) -> dict[str, tuple[str, str]]:
    """{subject: (result, data action)} of the events of `action`."""
    conn = db.connect(home.db)
    try:
        rows = conn.execute("SELECT subject, result, data FROM events WHERE action = ?",
                            (str(action),)).fetchall()
    finally:
        conn.close()
    return {row["subject"]: (row["result"], json.loads(row["data"])["action"]) for row in rows}


async def test_spam_delivered_marked_reads_delivered_and_dropped_spam_superseded(
        tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, heuristic__enabled=True, heuristic__x_bulk=True,
                       rules__spam=[SPAM_RULE], blacklist__enabled=True,
                       blacklist__entries=["@listed.test"], subject__enabled=True,
                       subject__lines=["*fwdme*"], subject__action="forward",
                       subject__forward_to="postmaster@local.test")
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(_send, port, "a@client.test", "Gtube", GTUBE)
    await trio.to_thread.run_sync(_send, port, "b@client.test", "Offer", "cheap pills here")
    await trio.to_thread.run_sync(_send, port, "c@listed.test", "Dropped", GTUBE)
    await trio.to_thread.run_sync(_send, port, "d@client.test", "Fwdme", GTUBE)
    received = await sink.await_messages(3, timeout=60)
    subjects = sorted(email.message_from_bytes(m.data, policy=policy.default)["Subject"]
                      for m in received)
    # delivered, marked; the forwarded copy too (review19 D5)
    assert subjects == ["[Spam] Fwdme", "[Spam] Gtube", "[Spam] Offer"]
    for message in received:
        assert email.message_from_bytes(message.data)["X-Bulk"] == "100"
    await until(lambda: core.counters.values["dropped"] == 1, 60, flush=core.events.aflush)

    assert _results(home, Action.HEURISTIC_SPAM) == {
        "Gtube": ("delivered", "deliver"),
        "Dropped": ("superseded", "deliver"),                    # the blacklist dropped it
        "Fwdme": ("forwarded", "deliver")}                       # forwarded with its marks
    assert _results(home, Action.SPAM_RULE_VIOLATION) == {"Offer": ("delivered", "deliver")}
    assert _results(home, Action.SENDER_BLOCKED) == {"Dropped": ("dropped", "drop")}
    # the Status page's counters count the events, whatever their result
    assert core.counters.values["spam_heuristic"] == 4
    assert core.counters.values["spam_blacklist"] == 1
    assert core.counters.values["spam_messages"] == 4
    core.cancel_scope.cancel()
