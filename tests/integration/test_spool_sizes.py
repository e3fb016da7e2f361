"""The size check of spool entries (chaos finding 7) never sets a good message aside: mail of
every kind, received over real SMTP by the in-process listener and by listener processes,
has the size its envelope gives, before and after the pipeline rewrote it (a disclaimer),
across a restart; then it is delivered as it was. smtplib -> the core -> a loopback sink."""

from __future__ import annotations

import base64
import os
import smtplib

import pytest
import trio

from core.app import run_core
from shared.events import Action
from shared.spool import CORRUPT, Spool
from tests.support.core import make_home, set_settings
from tests.support.waiting import events_of

pytestmark = pytest.mark.trio

HEAD = "From: a@client.test\r\nTo: x@elsewhere.test\r\nMessage-ID: <{n}@client.test>\r\n" \
       "Subject: kind {n}\r\nMIME-Version: 1.0\r\n"
PLAIN = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
BIG = base64.encodebytes(os.urandom(3 << 20)).replace(b"\n", b"\r\n")   # past the in-memory
                                                                        # buffer: streamed


def _messages() -> list[tuple[bytes, list[str]]]:
    """(message, MAIL parameters) of every kind."""
    def head(n):
        return HEAD.format(n=n).encode()
    return [
        (head(1) + PLAIN.encode() + "Grüße, Ærø, 日本語\r\n".encode(), ["BODY=8BITMIME"]),
        (head(2) + PLAIN.encode() + b".\r\n..two dots\r\n.one dot\r\n. \r\nend\r\n", []),
        (head(3) + b"Content-Type: application/octet-stream\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\n" + BIG, []),
        (head(4) + PLAIN.encode() + b"x" * 996 + b"\r\nno final line break", []),
        (head(5) + PLAIN.encode() + b"bare\nline\nfeeds\n", []),
        (head(6) + b"\r\n", []),                        # no body at all
    ]


def _send(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        for data, options in _messages():
            client.sendmail("a@client.test", ["x@elsewhere.test"], data, mail_options=options)


@pytest.mark.parametrize("processes", [1, 2])
async def test_mail_of_every_kind_passes_the_size_check_and_goes_out_whole(tmp_path, sink,
                                                                          processes):
    count = len(_messages())
    home = make_home(tmp_path, smtp__listener_processes=processes, delivery__paused=True,
                     routing__default={"host": "127.0.0.1", "port": sink.port},
                     relay__mode="allow", disclaimer__enabled=True,
                     disclaimer__text="Le disclaimer \u2014 d\u00e9j\u00e0 vu.")
    spool = Spool(home.spool)
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1])
        with trio.fail_after(60):   # processed (rewritten), waiting for the pause to end
            while sum(spool.read_envelope("fast", q).processed
                      for q in spool.list("fast")) < count:
                await trio.sleep(0.1)
        core.cancel_scope.cancel()
    assert [spool.problem("fast", q) for q in spool.list("fast")] == [None] * count
    set_settings(home, delivery__paused=False)
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)      # recover() checks every entry
        received = await trio.to_thread.run_sync(sink.wait_for, count, 60)
        core.cancel_scope.cancel()
    assert os.listdir(home.spool / CORRUPT) == []
    assert [e for e in events_of(home, Action.SCAN_ERROR)] == []
    by_id = {m.message["Message-ID"]: m.data for m in received}
    for n, (data, _) in enumerate(_messages(), 1):
        sent_body = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n").split(b"\r\n\r\n", 1)[1]
        assert sent_body.rstrip(b"\r\n") in by_id[f"<{n}@client.test>"], n
    # the pipeline did rewrite them (the disclaimer), before the restart
    assert sum(b"Le disclaimer" in data or b"TGUgZGlzY2xhaW1lc" in data
               for data in by_id.values()) >= 4
