"""A next hop that takes fewer recipients per transaction than we send (core/delivery/
deliver.py rule 7, session.py rule 8; interop findings 1 and 2): its `452 4.5.3` (or RFC
821's `552` "too many recipients", which RFC 5321 §4.5.3.1.10 asks clients to treat as
temporary) is flow control. The refused recipients go at once in further transactions
of the same attempt; only a hop that takes none of them defers them.

The hop is scripted here on loopback (the sink has no per-transaction limit): plain bytes,
nothing shared with core/smtp.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest
import trio

from core.delivery import Deliverer, NextHop
from shared.events import Action
from shared.settings import defaults
from shared.spool import Envelope
from tests.integration.test_queue import Harness
from tests.support.scripted_server import command_lines, serve_on_loopback

pytestmark = pytest.mark.trio

MESSAGE = b"Subject: many\r\n\r\nhello\r\n"
R452 = b"452 4.5.3 Too many recipients"
R552 = b"552 5.5.3 Too many recipients"
R552_RFC821 = b"552 Error: too many recipients"     # no enhanced code: known by its text


class LimitedHop:
    """A next hop taking at most `limit` recipients a transaction; each RCPT past it gets
    `refusal`. `refused` addresses get 550 (inside the limit, they count toward it, as
    for Postfix's smtpd_recipient_limit they would not; either way works for us)."""

    def __init__(self, limit: int, refusal: bytes = R452, *, pipelining: bool = True,
                 close_after_data: bool = False, closing_reply: bytes | None = None,
                 refused: frozenset = frozenset()):
        self.limit = limit
        self.refusal = refusal
        self.pipelining = pipelining
        self.close_after_data = close_after_data
        self.closing_reply = closing_reply      # the answer to the next MAIL, then it closes
        self.refused = refused
        self.messages: list[list[str]] = []     # the recipients of each message taken
        self.connections = 0

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await serve_on_loopback(self._handle, task_status)

    async def _handle(self, stream) -> None:
        self.connections += 1

        async def say(*lines: bytes) -> None:
            await stream.send_all(b"".join(line + b"\r\n" for line in lines))

        await say(b"220 hop.test ESMTP")
        recipients: list[str] | None = None
        answered = 0
        in_data = False
        taken_here = 0                          # messages taken on this connection
        async for line in command_lines(stream):
            if in_data:
                if line == b".":
                    in_data = False
                    self.messages.append(recipients)
                    taken_here += 1
                    recipients = None
                    await say(b"250 2.0.0 queued")
                    if self.close_after_data and not self.closing_reply:
                        await stream.aclose()
                        return
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                await say(b"250-hop.test", *([b"250-PIPELINING"] if self.pipelining else []),
                          b"250-8BITMIME", b"250 ENHANCEDSTATUSCODES")
            elif verb == b"MAIL":
                if self.closing_reply and taken_here:       # one message a connection
                    await say(self.closing_reply)
                    await stream.aclose()
                    return
                recipients, answered = [], 0
                await say(b"250 2.1.0 ok")
            elif verb == b"RCPT":
                address = line.decode().partition("<")[2].rstrip(">")
                if answered >= self.limit:
                    await say(self.refusal)
                    continue
                answered += 1
                if address in self.refused:
                    await say(b"550 5.1.1 no such user")
                else:
                    recipients.append(address)
                    await say(b"250 2.1.5 ok")
            elif verb == b"DATA":
                if recipients:
                    in_data = True
                    await say(b"354 go ahead")
                else:
                    await say(b"554 5.5.1 no valid recipients")
            elif verb == b"RSET":
                recipients = None
                await say(b"250 2.0.0 ok")
            elif verb == b"QUIT":
                await say(b"221 2.0.0 bye")
                return
            else:
                await say(b"502 5.5.2 not implemented")


class _Events:
    def record(self, action, **fields):
        pass


def _settings(**changes):
    values = {**defaults(), "smtp.hostname": "gw.test", "dns.resolvers": ["127.0.0.1:9"],
              **{key.replace("__", "."): value for key, value in changes.items()}}
    return MappingProxyType(values)


async def _deliver(nursery, tmp_path, hop: LimitedHop, recipients: list[str], **changes):
    port = await nursery.start(hop.serve)
    path = tmp_path / "message"
    path.write_bytes(MESSAGE)
    envelope = Envelope.new("Q1", "alice@sender.test", recipients)
    envelope.size = len(MESSAGE)
    settings = _settings(**changes)
    deliverer = Deliverer(settings=lambda: settings, events=_Events(),
                          diagnostics_dir=tmp_path / "diagnostics")
    try:
        return await deliverer.deliver(NextHop("relay", "127.0.0.1", port), envelope,
                                       recipients, path)
    finally:
        await deliverer.aclose()


def _addresses(count: int) -> list[str]:
    return [f"r{n}@dest.test" for n in range(1, count + 1)]


@pytest.mark.parametrize("refusal", [R452, R552, R552_RFC821])
@pytest.mark.parametrize("pipelining", [True, False])
async def test_recipients_over_the_hops_limit_go_in_further_transactions_at_once(
        tmp_path, nursery, refusal, pipelining):
    # finding 1: a 552 bounced r3..r5 at once; finding 2: a 452 sent them to the slow queue
    hop = LimitedHop(2, refusal, pipelining=pipelining)
    results = await _deliver(nursery, tmp_path, hop, _addresses(5))
    assert [r.outcome for r in results] == ["delivered"] * 5
    assert hop.messages == [["r1@dest.test", "r2@dest.test"], ["r3@dest.test", "r4@dest.test"],
                            ["r5@dest.test"]]
    assert hop.connections == 1


async def test_a_1000_recipient_message_to_a_50_recipient_hop_is_done_in_one_attempt(
        tmp_path, nursery):
    hop = LimitedHop(50)
    results = await _deliver(nursery, tmp_path, hop, _addresses(1000))
    assert [r.outcome for r in results] == ["delivered"] * 1000
    # 100 sent in the first transaction, 50 taken; then 50 a transaction
    assert [len(m) for m in hop.messages] == [50] * 20
    assert sorted(sum(hop.messages, [])) == sorted(_addresses(1000))
    assert hop.connections == 1


async def test_a_hops_recipient_limit_is_no_error_for_the_conversation_log(tmp_path, nursery):
    """Regression hunt: with outbound logging on error, every delivery to a hop with a
    recipient limit kept a log, its 452 recorded as an error though the delivery went."""
    hop = LimitedHop(2)
    results = await _deliver(nursery, tmp_path, hop, _addresses(5),
                             diagnostics__conversation__outbound="on_error")
    assert [r.outcome for r in results] == ["delivered"] * 5
    assert not list((tmp_path / "diagnostics").glob("outbound-*"))
    results = await _deliver(nursery, tmp_path, LimitedHop(2), _addresses(5),
                             diagnostics__conversation__outbound="all")
    [log] = (tmp_path / "diagnostics").glob("outbound-*")
    text = log.read_text()
    assert "takes no more recipients in this transaction" in text and "!! " not in text


async def test_other_refusals_inside_the_limit_stand(tmp_path, nursery):
    hop = LimitedHop(2, refused=frozenset({"r2@dest.test"}))
    results = await _deliver(nursery, tmp_path, hop, _addresses(4))
    assert [(r.outcome, r.status) for r in results] == [
        ("delivered", "2.0.0"), ("failed", "5.1.1"), ("delivered", "2.0.0"),
        ("delivered", "2.0.0")]
    assert hop.messages == [["r1@dest.test"], ["r3@dest.test", "r4@dest.test"]]


async def test_a_hop_that_closes_after_each_message_gets_the_rest_on_a_new_connection(
        tmp_path, nursery):
    hop = LimitedHop(2, close_after_data=True)
    results = await _deliver(nursery, tmp_path, hop, _addresses(5))
    assert [r.outcome for r in results] == ["delivered"] * 5
    assert [len(m) for m in hop.messages] == [2, 2, 1]
    assert hop.connections == 3


async def test_a_hop_that_says_421_after_each_message_gets_the_rest_on_a_new_connection(
        tmp_path, nursery):
    """Its 421 answers our next MAIL: the recipients its limit held back were deferred to
    the slow queue, with a delay notice, though the hop had taken the transaction before
    (review item). Like a connection gone stale, it is one fresh connection first."""
    hop = LimitedHop(2, closing_reply=b"421 4.7.0 hop.test closing: one message per connection")
    results = await _deliver(nursery, tmp_path, hop, _addresses(5))
    assert [r.outcome for r in results] == ["delivered"] * 5
    assert [len(m) for m in hop.messages] == [2, 2, 1]
    assert hop.connections == 3


@pytest.mark.parametrize("refusal", [R452, R552])
async def test_a_hop_that_takes_no_recipient_defers_them_never_bounces(tmp_path, nursery,
                                                                       refusal):
    hop = LimitedHop(0, refusal)
    results = await _deliver(nursery, tmp_path, hop, _addresses(3))
    assert [(r.outcome, r.status) for r in results] == [("deferred", "4.5.3")] * 3
    assert results[0].text == refusal.decode() and results[0].is_remote_reply
    assert hop.messages == []


async def test_the_queue_completes_such_a_message_in_one_attempt_without_a_delay_notice(
        tmp_path, nursery):
    hop = LimitedHop(50)
    port = await nursery.start(hop.serve)
    h = Harness(tmp_path, [{"match": "*.test", "relay": "127.0.0.1", "port": port}])
    queue_id = h.put("alice@sender.test", _addresses(120))
    await nursery.start(h.manager().run)
    await h.until(lambda: h.events.of(Action.COMPLETED))
    assert h.ids("fast") == h.ids("slow") == []
    assert h.events.of(Action.DEFERRED) == []
    assert len(h.events.of(Action.DELIVERED)) == 120
    # no delay notice went to alice@sender.test (same hop): only the message's transactions
    assert [len(m) for m in hop.messages] == [50, 50, 20]
    assert all(m != ["alice@sender.test"] for m in hop.messages)
    [completed] = h.events.of(Action.COMPLETED)
    assert completed["queue_id"] == queue_id
