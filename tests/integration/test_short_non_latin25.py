"""Short mail in non-Latin scripts through the gateway with the shipped spam definitions at
the default sensitivity: smtplib -> the core on loopback (real worker processes) -> a loopback
sink. None of it may be marked spam. The shared corpus holds no such ham, and a rev 7
candidate was withdrawn for pushing short Greek mail up (docs/antispam-model.md, "Recall
elsewhere" and "The prior on the ASCII bytes"): this is the check a new set must pass."""

from __future__ import annotations

import smtplib

import trio

from core.app import run_core
from shared import db
from tests.support.core import make_home
from tests.support.non_latin_mail import short_non_latin_mail


def _send(port: int, sender: str, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, ["user@local.test"], data, mail_options=["BODY=8BITMIME"])


def _spam_events(home) -> list[tuple[str, str]]:
    conn = db.connect(home.db)
    try:
        return [tuple(row) for row in conn.execute(
            "SELECT subject, data FROM events WHERE action = 'heuristic_spam'")]
    finally:
        conn.close()


async def test_short_non_latin_mail_is_not_marked_spam(tmp_path, sink, nursery):
    home = make_home(
        tmp_path, routing__local=[{"match": "local.test", "relay": "127.0.0.1",
                                   "port": sink.port}],
        heuristic__enabled=True)            # sensitivity 1, the default: spam at score 90
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    mail = short_non_latin_mail(to="user@local.test")
    for _label, sender, data in mail:
        await trio.to_thread.run_sync(_send, port, sender, data)
    await trio.to_thread.run_sync(lambda: sink.wait_for(len(mail), timeout=60))
    await core.events.aflush()
    assert _spam_events(home) == []
    assert sorted(m.sender for m in sink.messages) == sorted(s for _, s, _ in mail)
    assert not any(b"[Spam]" in m.data.split(b"\r\n\r\n")[0] for m in sink.messages)
    core.cancel_scope.cancel()
