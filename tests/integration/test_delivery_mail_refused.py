"""A next hop that refuses MAIL: its reply decides for every recipient of the transaction
(core/delivery/session.py `_never_sent`, deliver.py rule 1), with or without PIPELINING.

The bug this pins: without PIPELINING no RCPT follows a refused MAIL, and the
recipients never sent were deferred as "no answer from <peer>" with status 4.4.2 — a 421 of
a hop closing a pooled connection lost its text, and a 550 at MAIL was retried for days
instead of failing. The hop is scripted here on loopback: plain bytes, nothing shared with
core/smtp.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest
import trio

from core.delivery import Deliverer, NextHop
from shared.events import CONNECTION_CACHED, CONNECTION_FAILED, Action
from shared.settings import defaults
from shared.spool import Envelope
from tests.support.next_hop import Recorder
from tests.support.scripted_server import command_lines, serve_on_loopback

pytestmark = pytest.mark.trio

MESSAGE = b"Subject: refused\r\n\r\nhello\r\n"
R421 = b"421 4.3.2 hop.test shutting down, try again later"
R550 = b"550 5.7.1 sender refused by policy"


class RefusingHop:
    """Takes `take` messages, then answers every MAIL with `refusal` (and closes after a
    421, RFC 5321 §3.8), on the connection it took them on and on every new one."""

    def __init__(self, refusal: bytes, *, take: int, pipelining: bool):
        self.refusal = refusal
        self.take = take
        self.pipelining = pipelining
        self.taken = 0
        self.connections: list[list[str]] = []      # each connection's command verbs

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await serve_on_loopback(self._handle, task_status)

    async def _handle(self, stream) -> None:
        verbs: list[str] = []
        self.connections.append(verbs)

        async def say(line: bytes) -> None:
            await stream.send_all(line + b"\r\n")

        await say(b"220 hop.test ESMTP")
        in_data = False
        async for line in command_lines(stream):
            if in_data:
                if line == b".":
                    in_data = False
                    self.taken += 1
                    await say(b"250 2.0.0 queued")
                continue
            verb = line[:4].upper().decode()
            verbs.append(verb)
            if verb == "EHLO":
                await stream.send_all(b"250-hop.test\r\n"
                                      + (b"250-PIPELINING\r\n" if self.pipelining else b"")
                                      + b"250 ENHANCEDSTATUSCODES\r\n")
            elif verb == "MAIL" and self.taken >= self.take:
                await say(self.refusal)
                if self.refusal.startswith(b"421"):
                    await stream.aclose()
                    return
            elif verb == "DATA":
                in_data = True
                await say(b"354 go ahead")
            elif verb == "QUIT":
                await say(b"221 2.0.0 bye")
                return
            else:
                await say(b"250 2.0.0 ok")


async def _deliver_twice(nursery, tmp_path, hop: RefusingHop, recipients: list[str]):
    """The first message on a new connection, the second on it again from the pool."""
    port = await nursery.start(hop.serve)
    path = tmp_path / "message"
    path.write_bytes(MESSAGE)
    envelope = Envelope.new("Q1", "alice@sender.test", recipients)
    envelope.size = len(MESSAGE)
    settings = MappingProxyType({**defaults(), "smtp.hostname": "gw.test",
                                 "dns.resolvers": ["127.0.0.1:9"]})
    events = Recorder()
    deliverer = Deliverer(settings=lambda: settings, events=events)
    next_hop = NextHop("relay", "127.0.0.1", port)
    try:
        first = await deliverer.deliver(next_hop, envelope, recipients, path)
        second = await deliverer.deliver(next_hop, envelope, recipients, path)
    finally:
        await deliverer.aclose()
    assert [r.outcome for r in first] == ["delivered"] * len(recipients)
    return second, events


@pytest.mark.parametrize("pipelining", [False, True])
async def test_a_421_at_mail_on_a_reused_connection_defers_with_the_hops_reply(
        tmp_path, nursery, pipelining):
    hop = RefusingHop(R421, take=1, pipelining=pipelining)
    results, events = await _deliver_twice(nursery, tmp_path, hop,
                                           ["bob@dest.test", "carol@dest.test"])
    # the pooled connection got the 421, then one fresh connection (deliver.py rule 1) got it
    # too: what the recipients are deferred with, and what their DEFERRED events will say
    assert [(r.outcome, r.text, r.status, r.is_remote_reply, r.remote_mta)
            for r in results] == [("deferred", R421.decode(), "4.3.2", True, "127.0.0.1")] * 2
    assert [verbs[:2] for verbs in hop.connections] == [["EHLO", "MAIL"], ["EHLO", "MAIL"]]
    # the pooled connection's CONNECTED_TO names the 421 as why it was replaced (rule 5)
    [cached] = [fields for action, fields in events.events if action is Action.CONNECTED_TO
                and fields["data"]["connection"] == CONNECTION_CACHED]
    assert cached["result"] == CONNECTION_FAILED and cached["info"].endswith(R421.decode())


@pytest.mark.parametrize("pipelining", [False, True])
async def test_a_550_at_mail_fails_every_recipient_with_the_hops_reply(
        tmp_path, nursery, pipelining):
    hop = RefusingHop(R550, take=1, pipelining=pipelining)
    results, _ = await _deliver_twice(nursery, tmp_path, hop, ["bob@dest.test"])
    assert [(r.outcome, r.text, r.status, r.is_remote_reply) for r in results] == [
        ("failed", R550.decode(), "5.7.1", True)]
    assert len(hop.connections) == 1        # the connection stays open: a 5xx replaces nothing
