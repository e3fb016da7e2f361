"""International text matched as people mean it, end to end: smtplib -> the core on loopback
(real worker processes) -> a loopback sink (tester i18n19 B1, B2, B4).

- B1: Greek capitals are written without the tonos: the subject line `*ΠΡΟΣΦΟΡΑ*` let
  "Προσφορά εβδομάδας" through, and the file-name pattern `ΑΠΟΡΡΗΤΟ*` "απόρρητο_1.doc".
- B2: the content term `סודי ביותר` missed the same words written with vowel points.
- B4: a local part sent decomposed ("u" + U+0308) got past the blacklist entry `über*@…`,
  and "jose" + U+0301 missed the whitelist entry `josé@…` (scored as spam)."""

from __future__ import annotations

import base64
import email
import smtplib
from email import policy
from urllib.parse import quote

import trio

from core.app import run_core
from shared import db
from tests.support.core import make_home
from tests.support.waiting import until

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def _send(port: int, sender: str, data: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, ["user@local.test"], data.encode(),
                        mail_options=["SMTPUTF8", "BODY=8BITMIME"])


def _message(subject: str, body: str, sender: str = "a@client.test",
             attachment: str | None = None) -> str:
    words = "=?utf-8?B?" + base64.b64encode(subject.encode()).decode() + "?="
    head = f"From: <{sender}>\r\nTo: user@local.test\r\nSubject: {words}\r\nMIME-Version: 1.0\r\n"
    text = ("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
            f"\r\n{body}\r\n")
    if attachment is None:
        return head + text
    return (head + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n' + text
            + "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: "
            f"attachment; filename*=utf-8''{quote(attachment)}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nZGF0YQ==\r\n--b--\r\n")


def _events(home) -> list[tuple[str, str, str]]:
    conn = db.connect(home.db)
    try:
        return [tuple(row) for row in conn.execute(
            "SELECT action, rule, sender FROM events WHERE action IN ('subject_blocked', "
            "'content_rule_violation', 'attachment_deleted', 'sender_blocked', "
            "'heuristic_spam') ORDER BY id")]
    finally:
        conn.close()


async def test_marks_and_decomposed_local_parts_do_not_get_mail_past_the_policies(
        tmp_path, sink, nursery):
    home = make_home(
        tmp_path, routing__local=[{"match": "local.test", "relay": "127.0.0.1",
                                   "port": sink.port}],
        subject__enabled=True, subject__lines=["*ΠΡΟΣΦΟΡΑ*"], subject__action="log",
        rules__content=[{"enabled": True, "match": "any", "terms": ["סודי ביותר"],
                         "none_of": []}], rules__content_action="log",
        filename__enabled=True, filename__patterns=["ΑΠΟΡΡΗΤΟ*"],
        blacklist__enabled=True, blacklist__entries=["über*@bücher.test"],
        blacklist__action="drop", whitelist__custom__enabled=True,
        whitelist__custom=["josé@corp.test"], heuristic__enabled=True)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    send = [
        ("greek@client.test", _message("Προσφορά εβδομάδας", "Καλημέρα.")),
        ("hebrew@client.test", _message("מסמך", "המסמך סוֹדִי בְּיוֹתֵר.")),
        ("file@client.test", _message("Έγγραφο", "Συνημμένο.", attachment="απόρρητο_1.doc")),
        ("u\u0308bermensch@bücher.test", _message("Hallo", "Hallo.",
                                                 sender="u\u0308bermensch@bücher.test")),
        ("jose\u0301@corp.test", _message("Hola", f"Hola. {GTUBE}",
                                         sender="jose\u0301@corp.test")),
    ]
    for sender, data in send:
        await trio.to_thread.run_sync(_send, port, sender, data)
    await trio.to_thread.run_sync(sink.wait_for, 4)
    # every message is handled: delivered, or dropped by the blacklist
    await until(lambda: len(sink.messages) + sum(
        action == "sender_blocked" for action, _, _ in _events(home)) >= len(send), 20)
    await core.events.aflush()
    received = list(sink.messages)
    assert sorted((action, rule) for action, rule, _ in _events(home)) == sorted([
        ("subject_blocked", "subject.lines"),
        ("content_rule_violation", "rules.content[0]"),
        ("attachment_deleted", "filename.patterns"),
        ("sender_blocked", "blacklist.entries"),
        # the whitelist let josé's GTUBE past the heuristic engine, and says so (antispam21 B1)
        ("heuristic_spam", "whitelist.custom jos\u00e9@corp.test")])
    # the decomposed über… was dropped; the whitelisted josé's GTUBE is delivered unmarked
    assert sorted(m.sender for m in received) == sorted(
        ["greek@client.test", "hebrew@client.test", "file@client.test",
         "jose\u0301@corp.test"])
    [jose] = [m for m in received if m.sender == "jose\u0301@corp.test"]
    assert email.message_from_bytes(jose.data, policy=policy.default)["Subject"] == "Hola"
    core.cancel_scope.cancel()
