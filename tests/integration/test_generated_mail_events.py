"""What the delivery events of mail Mailmoat makes or forwards say (events finding C10;
core/spool/dispositions.py rule 5): a real core on loopback, real SMTP in, a loopback sink
for every address.

- A bounce, a delay notice, an alert and a violation notification: their `delivered` and
  `completed` rows carry the Subject the sink received. Before, the Subject column was
  empty, so the detail report could not say which alert or bounce went out.
- Forwarded mail (a policy forward, its copy to a second address, a hold-queue forward's
  copy) goes from <> under a Subject the forward gave it; its delivery rows carry the
  forwarded message's Subject, as the rest of that message's rows do (the hold-queue copy's
  were empty), keep the sender <> (what the next hop was given), and name the original
  sender in their data, a copy the queue id of the message it copies too, so a search for
  that sender or id finds them. Before, nothing in those rows said whose mail they were.
"""

from __future__ import annotations

import json
import smtplib
from collections import Counter
import subprocess
import sys

import pytest
import trio

from core.app import run_core
from shared.events import Action
from shared.spool import SUBJECT_META, Envelope, Spool, new_queue_id
from tests.support.core import routed_home
from tests.support.mail import send_infected
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

ADMIN = "ops@local.test"
ABUSE = "abuse@local.test"
TRAP = "trap@local.test"
HELD_TO = "sec@local.test"


def _hold(home) -> str:
    """A message in hold/, put there through the spool's own accept path with the Subject
    the SMTP listener would have read."""
    spool = Spool(home.spool)
    queue_id = new_queue_id()
    incoming = spool.open_incoming(queue_id)
    incoming.write(b"From: h@client.test\r\nSubject: held one\r\n\r\nbody\r\n")
    spool.commit([incoming.prepare(Envelope.new(queue_id, "h@client.test", ["user@local.test"],
                                                hold_reason="suspect_message",
                                                processed=True,
                                                meta={SUBJECT_META: "held one"}))], "hold")
    return queue_id


def _send(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        # one recipient refused for good, one for now: a bounce and a delay notice
        client.sendmail("a@local.test", ["gone@local.test", "later@local.test"],
                        b"Subject: to two\r\n\r\nhi\r\n")
        # two forwards with two Subjects: the message to one address, a copy to the other
        client.sendmail("spammer@bad.test", ["user@local.test"],
                        b"Subject: Grosser Ausverkauf\r\n\r\nbuy\r\n")


def _queue_forward(home) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.cli", "queue", "forward", HELD_TO,
                           "--hold", "--subject", "Held copy", "--home", str(home.root)],
                          capture_output=True, text=True, timeout=60)


async def test_generated_and_forwarded_mail_events_say_subject_and_whose_mail(
        tmp_path, sink, nursery):
    sink.rcpt_replies = {"gone@local.test": (550, "5.1.1 no such user"),
                         "later@local.test": (451, "4.2.0 try later")}
    home = routed_home(
        tmp_path, sink, admin__emails=[ADMIN], alerts__service_start=True, notify__admin=True,
        blacklist__enabled=True, blacklist__entries=["spammer@bad.test"],
        blacklist__action="forward", blacklist__forward_to=ABUSE,
        blacklist__forward_subject="Blacklisted sender",
        subject__enabled=True, subject__lines=["*ausverkauf*"], subject__action="forward",
        subject__forward_to=TRAP, subject__forward_subject="Subject hit")
    held_id = _hold(home)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(_send, port)
    await trio.to_thread.run_sync(send_infected, port)          # a notification to ADMIN
    forward = await trio.to_thread.run_sync(_queue_forward, home)
    assert forward.returncode == 0, forward.stderr

    # an alert, two notifications (the blacklisted sender, the virus), a bounce, a delay
    # notice, a forward, its copy, the held message's copy
    def null_sender_mail():
        found = [m for m in sink.messages if m.sender == ""]
        return found if len(found) >= 8 else None

    received = await until(null_sender_mail, 30)
    forwarded = {ABUSE: "Grosser Ausverkauf", TRAP: "Grosser Ausverkauf", HELD_TO: "held one"}
    expected = Counter((r, forwarded.get(r, m.message["Subject"])) for m in received
                       for r in m.recipients)
    assert {m.message["Subject"] for m in received} == {
        "Service Start", "Mailmoat Policy Violation", "Undelivered mail returned to sender",
        "Delivery delayed: still trying", "Blacklisted sender", "Subject hit", "Held copy"}
    assert sum(expected.values()) == 8

    def rows(action) -> list:
        return [row for row in events_of(home, action) if row["sender"] == ""]

    def said(rows) -> Counter:
        return Counter((row["recipients"], row["subject"]) for row in rows)

    await until(lambda: sum(said(rows(Action.COMPLETED)).values()) >= 8, 30,
                flush=core.events.aflush)
    delivered, completed = rows(Action.DELIVERED), rows(Action.COMPLETED)
    assert said(delivered) == expected
    assert said(completed) == expected
    core.cancel_scope.cancel()

    [accepted] = [row for row in events_of(home, Action.ACCEPTED)
                  if row["sender"] == "spammer@bad.test"]
    forwards = [row for row in delivered if row["recipients"] in forwarded]
    assert len(forwards) == 3
    for row in forwards:
        data = json.loads(row["data"])
        if row["recipients"] == HELD_TO:
            assert data["original_sender"] == "h@client.test"
            assert data["original_queue_id"] == held_id
            continue
        assert data["original_sender"] == "spammer@bad.test"
        if row["queue_id"] == accepted["queue_id"]:       # the message itself
            assert "original_queue_id" not in data and not data.get("generated")
        else:                                               # the copy
            assert data["original_queue_id"] == accepted["queue_id"] and data["generated"]
    # the marker the Summary counts generated mail by (shared/report.py), on every row of
    # mail Mailmoat made, and on none of the message it received
    for row in delivered:
        made_here = row["queue_id"] != accepted["queue_id"]
        assert json.loads(row["data"]).get("generated", False) is made_here
    origin = ("generated", "original_sender", "original_queue_id")
    by_queue_id = {row["queue_id"]: json.loads(row["data"]) for row in delivered}
    for row in completed:
        assert json.loads(row["data"]) == {
            k: v for k, v in by_queue_id[row["queue_id"]].items() if k in origin}
