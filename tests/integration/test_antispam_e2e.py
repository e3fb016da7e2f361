"""Antispam end to end: smtplib -> the core on loopback (real worker processes) -> a loopback
sink. GTUBE is marked ([Spam], X-Bulk: 100) with a heuristic_spam event naming the score and
the spam definitions; an outbound message teaches the auto-generated whitelist, which then
lets that domain's mail past the custom blacklist. Nothing leaves the machine."""

from __future__ import annotations

import email
import smtplib
from email import policy

import trio

from core.app import run_core
from core.scan.antispam.definitions import current
from shared import db
from shared.events import Action
from tests.support.commands import ask, command_row
from tests.support.core import make_home

from tests.support.waiting import until

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def _rows(home, sql, args=()):
    conn = db.connect(home.db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _send(port, sender, recipients, subject, body):
    text = (f"From: {sender}\r\nTo: {', '.join(recipients)}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '')}@client.test>\r\n\r\n{body}\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, recipients, text)


async def _until(predicate, timeout=20.0):
    await until(predicate, timeout)


async def test_gtube_is_marked_and_reported(tmp_path, sink, nursery):
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}],
        heuristic__enabled=True, heuristic__x_bulk=True, blacklist__enabled=True,
        blacklist__entries=["@listed.test"], blacklist__action="log")
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], "a@client.test",
                                  ["user@local.test"], "Test", f"GTUBE follows\r\n{GTUBE}")
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    assert parsed["Subject"] == "[Spam] Test"
    assert parsed["X-Bulk"] == "100"
    await core.events.aflush()
    [event] = _rows(home, "SELECT * FROM events WHERE action = ?", (str(Action.HEURISTIC_SPAM),))
    assert "Message is considered to be spam" in event["info"]
    assert current().label in event["info"] and '"score": 100' in event["data"]
    assert core.counters.values["spam_heuristic"] == 1
    # spam that is also malformed: marked, reported only as malformed (guide Table 7-9),
    # and still counted as spam on the Status page
    malformed = (b"From: b@client.test\r\nTo: user@local.test\r\nSubject: Broken\r\n"
                 b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
                 b"--b\r\nContent-Type: text/plain\r\n\r\n" + GTUBE.encode() + b"\r\n")
    await trio.to_thread.run_sync(_send_raw, core.smtp_addresses[0][1], malformed)
    received = await trio.to_thread.run_sync(sink.wait_for, 2)
    assert email.message_from_bytes(received[1].data)["Subject"] == "[Spam] Broken"
    await core.events.aflush()
    assert len(_rows(home, "SELECT * FROM events WHERE action = ?",
                     (str(Action.HEURISTIC_SPAM),))) == 1
    assert len(_rows(home, "SELECT * FROM events WHERE action = 'malformed'")) == 1
    assert core.counters.values["spam_heuristic"] == 2
    # a message two checks catch is one spam message on the Status page
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], "c@listed.test",
                                  ["user@local.test"], "Twice", f"GTUBE\r\n{GTUBE}")
    await trio.to_thread.run_sync(sink.wait_for, 3)
    await _until(lambda: core.counters.values["spam_blacklist"] == 1)
    assert core.counters.values["spam_heuristic"] == 3
    assert core.counters.values["spam_messages"] == 3
    core.cancel_scope.cancel()


def _send_utf8(port, sender, recipient):
    text = (f"From: {sender}\r\nTo: {recipient}\r\nSubject: Hallo\r\n\r\nHallo.\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, [recipient], text.encode(), mail_options=["SMTPUTF8"])


def _send_raw(port, data: bytes):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("b@client.test", ["user@local.test"], data)


async def test_outbound_mail_feeds_the_auto_whitelist_which_bypasses_the_blacklist(
        tmp_path, sink, nursery):
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}],
        routing__default={"host": "127.0.0.1", "port": sink.port},
        relay__allowed=["127.0.0.1"], whitelist__auto__enabled=True,
        blacklist__enabled=True, blacklist__entries=["@partner.test"], heuristic__enabled=True)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    # outbound: a local user writes to partner.test (twice) -> entry with frequency 2
    for n in range(2):
        await trio.to_thread.run_sync(_send, port, "me@local.test", ["you@partner.test"],
                                      f"Out {n}", "Hello partner.")
    # what does not teach: spam sent out (delivered marked), an address literal; an
    # internationalised domain is learned in its one form (A-labels)
    await trio.to_thread.run_sync(_send, port, "me@local.test", ["you@victim.test"],
                                  "Spam out", f"GTUBE\r\n{GTUBE}")
    await trio.to_thread.run_sync(_send, port, "me@local.test", ["you@[192.0.2.7]"],
                                  "Literal", "Hello host.")
    await trio.to_thread.run_sync(_send_utf8, port, "me@local.test", "jörg@bücher.test")
    await trio.to_thread.run_sync(sink.wait_for, 5)
    await _until(lambda: {tuple(r) for r in _rows(
        home, "SELECT domain, count FROM auto_whitelist")} == {
            ("partner.test", 2), ("xn--bcher-kva.test", 1)})
    # inbound from partner.test: blacklisted, but auto-whitelisted -> delivered
    await trio.to_thread.run_sync(_send, port, "you@partner.test", ["me@local.test"],
                                  "Reply", "Thanks.")
    received = await trio.to_thread.run_sync(sink.wait_for, 6)
    assert received[-1].sender == "you@partner.test"
    await core.events.aflush()
    # passed by the auto-generated whitelist, which the event names (antispam21 B1)
    [passed] = _rows(home, "SELECT * FROM events WHERE action = ?",
                     (str(Action.SENDER_BLOCKED),))
    assert passed["result"] == "whitelisted" and passed["rule"] == "whitelist.auto"
    assert core.counters.values["spam_blacklist"] == 0
    # the console's "delete" command
    ask(home, "whitelist.auto.delete", {"domains": ["partner.test", "xn--bcher-kva.test"]},
        requested_by="admin")
    await _until(lambda: not _rows(home, "SELECT * FROM auto_whitelist"))
    core.cancel_scope.cancel()


def _command(home, kind, args) -> int:
    return ask(home, kind, args, requested_by="admin")


def _command_done(home, command_id) -> bool:
    return command_row(home, command_id)["state"] == "done"


async def test_only_mail_a_person_sent_and_the_next_hop_took_teaches_the_auto_whitelist(
        tmp_path, sink, nursery):
    """Bounces and vacation replies relayed from inside go to whatever address spam forged;
    a recipient the next hop refused or keeps deferring may be mistyped or forged: none of
    them may make its domain a trusted sender."""
    sink.rcpt_replies = {"nobody@refused.test": (550, "5.1.1 no such user"),
                         "later@deferred.test": (451, "4.3.0 try again later")}
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}],
        routing__default={"host": "127.0.0.1", "port": sink.port},
        relay__allowed=["127.0.0.1"], whitelist__auto__enabled=True,
        delivery__retry_initial_seconds=1, delivery__retry_max_seconds=1)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]

    def send(sender, recipients, subject, extra=""):
        text = (f"From: me@local.test\r\nTo: {recipients[0]}\r\nSubject: {subject}\r\n"
                f"{extra}\r\nHello.\r\n")
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail(sender, recipients, text)

    await trio.to_thread.run_sync(send, "", ["forged@backscatter.test"], "Undeliverable")
    await trio.to_thread.run_sync(send, "me@local.test", ["spammer@vacation.test"],
                                  "Out of office", "Auto-Submitted: auto-replied\r\n")
    await trio.to_thread.run_sync(send, "MAILER-DAEMON@local.test", ["forged@daemon.test"],
                                  "Delivery Status Notification")
    for n, marks in enumerate(["Auto-Submitted: no\r\nAuto-Submitted: auto-replied\r\n",
                               "Precedence: auto_reply\r\n", "X-Autoreply: yes\r\n"]):
        await trio.to_thread.run_sync(send, "me@local.test", [f"spammer@vacation{n}.test"],
                                      "Away", marks)
    await trio.to_thread.run_sync(send, "me@local.test", ["you@person.test"], "Hi",
                                  "Auto-Submitted: no\r\n")
    await trio.to_thread.run_sync(send, "me@local.test", ["nobody@refused.test"], "Typo")
    await trio.to_thread.run_sync(send, "me@local.test",
                                  ["later@deferred.test", "ok@partial.test"], "Two")
    await _until(lambda: _rows(home, "SELECT * FROM events WHERE action = 'deferred'")
                 and _rows(home, "SELECT * FROM events WHERE action = 'delivery_failed'"))
    # a deletion is written before its command reports done: a barrier for the flush too
    done = _command(home, "whitelist.auto.delete", {"domains": ["none.test"]})
    await _until(lambda: _command_done(home, done))
    assert {tuple(r) for r in _rows(home, "SELECT domain, count FROM auto_whitelist")} == {
        ("person.test", 1), ("partial.test", 1)}
    # the deferred recipient, delivered at last, teaches then (its domain once per message)
    sink.rcpt_replies = {}
    await _until(lambda: sink.messages_to("later@deferred.test"))
    done = _command(home, "whitelist.auto.delete", {"domains": ["person.test"]})
    await _until(lambda: _command_done(home, done))
    assert {tuple(r) for r in _rows(home, "SELECT domain, count FROM auto_whitelist")} == {
        ("partial.test", 1), ("deferred.test", 1)}
    core.cancel_scope.cancel()


async def test_installed_spam_definitions_score_the_next_message(tmp_path, sink, nursery):
    """A signed spam package installed with `mailmoat definitions install` into a running
    core scores the next message (the workers get its directory from the core with each
    message); until then the packaged set scores."""
    import json
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from core.scan.antispam import definitions as spam_defs
    from shared import definitions as shared_defs
    from shared.cli import main

    key = Ed25519PrivateKey.generate()
    home = make_home(tmp_path / "home", routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}],
        heuristic__enabled=True, heuristic__x_bulk=True,
        definitions__trusted_keys=[shared_defs.public_key_b64(key)])
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    body = "Lunch at noon tomorrow? The usual place, see you there."
    await trio.to_thread.run_sync(_send, port, "a@client.test", ["user@local.test"], "Lunch",
                                  body)
    [plain] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert "X-Bulk" not in email.message_from_bytes(plain.data, policy=policy.default)

    # a set that calls everything spam: the packaged rules and weights, the bias far up
    packaged = spam_defs.load(spam_defs.PACKAGED_DIR)
    source = tmp_path / "spam-src"
    spam_defs.write(source, version="2031-05-06", revision=4,
                    rules_json=json.loads((spam_defs.PACKAGED_DIR /
                                           spam_defs.RULES_FILE).read_text()),
                    bias=1000.0, weights=packaged.weights, z90=packaged.z90, info={})
    (source / spam_defs.MANIFEST_FILE).unlink()     # the package carries its own manifest
    package = tmp_path / "spam.mmdef"
    shared_defs.build_package(source, key, package, kind="spam", version="2031-05-06",
                              revision=4)
    assert await trio.to_thread.run_sync(main, ["definitions", "install", str(package),
                                                "--home", str(home.root)]) == 0

    with trio.fail_after(20):              # the core looks at definitions/ twice a second
        while not _rows(home, "SELECT 1 FROM events WHERE action = ? AND rule = ?",
                        (str(Action.DEFINITIONS_UPDATED), "definitions.spam")):
            await trio.sleep(0.05)
            await core.events.aflush()
    await trio.to_thread.run_sync(_send, port, "a@client.test", ["user@local.test"],
                                  "Lunch again", body)
    [_, received] = await trio.to_thread.run_sync(sink.wait_for, 2)
    assert email.message_from_bytes(received.data, policy=policy.default)["X-Bulk"] == "100"
    await core.events.aflush()
    [event] = _rows(home, "SELECT * FROM events WHERE action = ?",
                    (str(Action.HEURISTIC_SPAM),))
    assert "spam definitions 2031-05-06 rev 4" in event["info"]
    core.cancel_scope.cancel()


FORGED_MARKS = ("X-Bulk: 0\r\nX-Mailmoat-Folder: inbox\r\nX-Mailmoat-Language: en\r\n"
                "X-Bulk : 5\r\n")


async def test_marks_a_sender_wrote_in_never_reach_the_mailbox(tmp_path, sink, nursery):
    """Antispam adversary B2: the gateway's X-Bulk replaced a sender's only on spam it
    marked, so a forged "X-Bulk: 0" reached the mailbox on every other message, where the
    administrator's mail server or client rules read it as the gateway's verdict. While a
    setting writes a mark, the sender's field goes from every message delivered."""
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}],
        heuristic__enabled=True, heuristic__x_bulk=True, premium__spam__spam_folder=True)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    for subject, body in (("Lunch", "Lunch on Friday?"), ("Test", f"GTUBE\r\n{GTUBE}")):
        raw = (f"From: a@client.test\r\nTo: user@local.test\r\nSubject: {subject}\r\n"
               f"{FORGED_MARKS}Message-ID: <{subject}@client.test>\r\n\r\n{body}\r\n")
        await trio.to_thread.run_sync(_send_raw, port, raw.encode())
    received = [email.message_from_bytes(m.data, policy=policy.default)
                for m in await trio.to_thread.run_sync(sink.wait_for, 2)]
    # the two are scanned and delivered side by side: either may arrive first
    ham, spam = sorted(received, key=lambda m: m["Subject"] != "Lunch")
    assert ham["Subject"] == "Lunch" and ham.get_all("X-Bulk") is None
    assert ham["X-Mailmoat-Folder"] is None
    # no setting writes X-Mailmoat-Language here (premium.language.enabled is off): kept
    assert ham["X-Mailmoat-Language"] == "en"
    assert spam["Subject"] == "[Spam] Test" and spam.get_all("X-Bulk") == ["100"]
    assert spam["X-Mailmoat-Folder"] is None
    await core.events.aflush()
    # a removal is no decision and writes no event
    assert not _rows(home, "SELECT * FROM events WHERE rule LIKE 'heuristic.x_bulk%' "
                           "OR rule LIKE 'premium.%'")
    core.cancel_scope.cancel()


async def test_marks_are_left_as_sent_while_no_setting_writes_them(tmp_path, sink, nursery):
    home = make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}],
        heuristic__enabled=True)
    core = await nursery.start(run_core, home)
    raw = (f"From: a@client.test\r\nTo: user@local.test\r\nSubject: Lunch\r\n{FORGED_MARKS}"
           f"Message-ID: <lunch@client.test>\r\n\r\nLunch on Friday?\r\n").encode()
    await trio.to_thread.run_sync(_send_raw, core.smtp_addresses[0][1], raw)
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert received.data.endswith(raw)          # byte for byte, below the gateway's Received
    core.cancel_scope.cancel()
