"""More than 100 recipients for one next hop go in several transactions on one connection
(core/delivery/deliver.py rule 7): each starts clean, whatever became of the one before
(core/delivery/session.py rules 9 and 10; outbound19 finding A1).

The next hop is the sink (tests/support/sink.py), which keeps a transaction open as Postfix
does: a DATA refused for want of accepted recipients leaves its MAIL standing, and the next
MAIL gets "503 5.5.1 nested MAIL command" until an RSET. Before the fix, a first batch of
100 recipients all refused (greylisted, or stale addresses) made the next batch's MAIL get
that 503, and every later recipient, deliverable ones too, was failed and bounced.
"""

from __future__ import annotations

import pytest
import trio

from core.delivery import NextHop
from tests.support.next_hop import deliver, snapshot
from tests.support.scripted_server import command_lines, serve_on_loopback

GREYLISTED = (451, "4.7.1 greylisted, try again later")
UNKNOWN = (550, "5.1.1 no such user here")


def _refusing(prefix: str, answer):
    return lambda address: answer if address.startswith(prefix) else None


@pytest.mark.parametrize("pipelining", [True, False])
async def test_a_greylisted_first_batch_leaves_every_recipient_waiting(
        make_sink, tmp_path, pipelining):
    sink = make_sink(pipelining=pipelining)
    sink.tempfail_all = True
    recipients = [f"user{n}@temp.test" for n in range(150)]
    results, _events = await deliver(tmp_path, snapshot(),
                                     NextHop("relay", "127.0.0.1", sink.port), recipients)
    assert {(r.outcome, r.status) for r in results} == {("deferred", "4.3.0")}
    assert {r.text for r in results} == {"451 4.3.0 sink says try again later"}
    assert sink.messages == []
    [connection] = sink.connections            # both batches on the one connection
    assert connection.commands.count("MAIL") == 2


@pytest.mark.parametrize("pipelining", [True, False])
async def test_after_a_first_batch_of_unknown_users_the_next_batch_is_delivered(
        make_sink, tmp_path, pipelining):
    sink = make_sink(pipelining=pipelining)
    sink.rcpt_reply = _refusing("perm", UNKNOWN)
    stale = [f"perm{n}@mixed.test" for n in range(100)]
    valid = [f"valid{n}@mixed.test" for n in range(50)]
    results, _events = await deliver(tmp_path, snapshot(),
                                     NextHop("relay", "127.0.0.1", sink.port), stale + valid)
    outcome = {r.address: (r.outcome, r.text) for r in results}
    assert {outcome[a] for a in stale} == {("failed", "550 5.1.1 no such user here")}
    assert {outcome[a][0] for a in valid} == {"delivered"}
    [message] = sink.messages
    assert message.recipients == valid
    assert len(sink.connections) == 1
    # the refused transaction was ended before the next one (RFC 5321 §4.1.1.5)
    commands = sink.connections[0].commands
    assert commands.index("RSET") < commands.index("MAIL", commands.index("RSET"))


@pytest.mark.parametrize("pipelining", [True, False])
async def test_greylisted_and_deliverable_recipients_past_the_first_batch(
        make_sink, tmp_path, pipelining):
    """t130: the first 100 (and 20 more) greylisted, 30 deliverable after them."""
    sink = make_sink(pipelining=pipelining)
    sink.rcpt_reply = _refusing("temp", GREYLISTED)
    waiting = [f"temp{n}@mixed.test" for n in range(120)]
    valid = [f"ok{n}@mixed.test" for n in range(30)]
    results, _events = await deliver(tmp_path, snapshot(),
                                     NextHop("relay", "127.0.0.1", sink.port), waiting + valid)
    outcome = {r.address: (r.outcome, r.status) for r in results}
    assert {outcome[a] for a in waiting} == {("deferred", "4.7.1")}
    assert {outcome[a] for a in valid} == {("delivered", "2.0.0")}
    assert [m.recipients for m in sink.messages] == [valid]


async def test_a_503_to_mail_defers_and_never_fails(make_sink, tmp_path):
    """A 503 to MAIL says our session is out of step with the server's, nothing about the
    recipients: they wait, none is bounced."""
    sink = make_sink()
    sink.mail_reply = (503, "5.5.1 nested MAIL command")
    recipients = [f"r{n}@dest.test" for n in range(150)]
    results, _events = await deliver(tmp_path, snapshot(),
                                     NextHop("relay", "127.0.0.1", sink.port), recipients)
    assert {r.outcome for r in results} == {"deferred"}
    # the first batch has the reply; the connection dropped, the rest were left untried,
    # and their text says why (review19 r2 C1: it read "connection closed", though we
    # dropped it). A fresh connection would be no cleaner than the one that got the 503.
    assert {(r.status, r.text) for r in results[:100]} == {
        ("4.5.1", "503 5.5.1 nested MAIL command")}
    assert {(r.status, r.text) for r in results[100:]} == {
        ("4.4.2", "connection ended before these recipients were tried: dropped after MAIL "
                  "got 503 5.5.1 nested MAIL command")}
    assert len(sink.connections) == 1


@pytest.mark.parametrize("pipelining", [True, False])
async def test_a_503_to_a_later_mail_sends_that_batch_again_on_a_fresh_connection(
        nursery, tmp_path, pipelining):
    """A next hop whose every connection answers its second MAIL with 503, however the
    first transaction ended: the second batch goes on a new connection and is delivered."""
    taken: list[list[str]] = []
    connections: list[list[bytes]] = []

    async def handle(stream):
        lines: list[bytes] = []
        connections.append(lines)
        mails = 0
        recipients: list[str] = []
        in_data = False

        async def say(line: bytes) -> None:
            await stream.send_all(line + b"\r\n")

        await say(b"220 odd.test ESMTP")
        async for line in command_lines(stream):
            if in_data:
                if line == b".":
                    in_data = False
                    taken.append(recipients)
                    await say(b"250 2.0.0 queued")
                continue
            lines.append(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                await say(b"250-odd.test\r\n250-ENHANCEDSTATUSCODES"
                          + (b"\r\n250 PIPELINING" if pipelining else b"\r\n250 8BITMIME"))
            elif verb == b"MAIL":
                mails += 1
                recipients = []
                await say(b"250 2.1.0 ok" if mails == 1 else b"503 5.5.1 nested MAIL command")
            elif verb == b"RCPT":
                if mails == 1:
                    recipients.append(line.decode().partition("<")[2].rstrip(">"))
                await say(b"250 2.1.5 ok" if mails == 1 else b"503 5.5.1 need MAIL first")
            elif verb == b"DATA":
                if mails == 1:
                    in_data = True
                    await say(b"354 go ahead")
                else:
                    await say(b"503 5.5.1 need MAIL first")
            elif verb == b"RSET":
                await say(b"250 2.0.0 ok")
            elif verb == b"QUIT":
                await say(b"221 2.0.0 bye")
                return

    async def server(task_status):
        await serve_on_loopback(handle, task_status)

    port = await nursery.start(server)
    recipients = [f"r{n}@dest.test" for n in range(150)]
    results, _events = await deliver(tmp_path, snapshot(), NextHop("relay", "127.0.0.1", port),
                                     recipients)
    assert {r.outcome for r in results} == {"delivered"}
    assert [len(batch) for batch in taken] == [100, 50]
    assert len(connections) == 2


def _postfix_like(connections: list[list[bytes]], taken: list[list[str]], pipelining: bool,
                  first_ends: str):
    """A next hop that keeps a refused transaction open as Postfix does (DATA with no
    accepted recipient: 554, the transaction still open; MAIL in it: 503) and refuses
    every "perm" recipient. On its first connection the refused transaction ends as
    `first_ends` says: "close" after the 554 to DATA, or at the RSET "421" (and close),
    "hang up" (close without a word) or "502" (RSET refused); later connections answer
    RSET 250."""
    async def handle(stream):
        lines: list[bytes] = []
        connections.append(lines)
        first = len(connections) == 1
        is_open = False
        recipients: list[str] = []
        in_data = False

        async def say(line: bytes) -> None:
            await stream.send_all(line + b"\r\n")

        await say(b"220 pf.test ESMTP")
        try:
            async for line in command_lines(stream):
                if in_data:
                    if line == b".":
                        in_data = is_open = False
                        taken.append(recipients)
                        await say(b"250 2.0.0 queued")
                    continue
                lines.append(line)
                verb = line[:4].upper()
                if verb == b"EHLO":
                    await say(b"250-pf.test\r\n250-ENHANCEDSTATUSCODES"
                              + (b"\r\n250 PIPELINING" if pipelining else b"\r\n250 8BITMIME"))
                elif verb == b"MAIL":
                    if is_open:
                        await say(b"503 5.5.1 Error: nested MAIL command")
                    else:
                        is_open, recipients = True, []
                        await say(b"250 2.1.0 Ok")
                elif verb == b"RCPT":
                    address = line.decode().partition("<")[2].rstrip(">")
                    if not is_open:
                        await say(b"503 5.5.1 Error: need MAIL command")
                    elif address.startswith("perm"):
                        await say(b"550 5.1.1 <%s>: Recipient address rejected"
                                  % address.encode())
                    else:
                        recipients.append(address)
                        await say(b"250 2.1.5 Ok")
                elif verb == b"DATA":
                    if not is_open:
                        await say(b"503 5.5.1 Error: need RCPT command")
                    elif not recipients:
                        await say(b"554 5.5.1 Error: no valid recipients")
                        if first and first_ends == "close":
                            return
                    else:
                        in_data = True
                        await say(b"354 End data with <CR><LF>.<CR><LF>")
                elif verb == b"RSET":
                    if first and first_ends == "hang up":
                        return
                    if first and first_ends == "421":
                        await say(b"421 4.7.0 pf.test Error: too many errors")
                        return
                    if first and first_ends == "502":
                        await say(b"502 5.5.2 Error: command not recognized")
                        continue
                    is_open = False
                    await say(b"250 2.0.0 Ok")
                elif verb == b"QUIT":
                    await say(b"221 2.0.0 Bye")
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()

    return handle


@pytest.mark.parametrize("pipelining, first_ends", [
    (True, "close"), (True, "421"), (False, "421"), (True, "hang up"), (False, "hang up"),
    (True, "502"), (False, "502")])
async def test_a_connection_gone_after_a_refused_transaction_is_replaced_for_the_next(
        nursery, tmp_path, pipelining, first_ends):
    """review19 r2 R1: a hop that hangs up after refusing the data, answers the RSET that
    ends the refused transaction with 421 (Postfix's "too many errors") or nothing, or
    refuses it, leaves the connection unusable between two transactions. The next batch
    went unsent, deferred "connection closed before these recipients were tried" with a
    delay notice, where one fresh connection delivers it (as the pipelining client did
    before the RSET: its next MAIL found the connection dead)."""
    connections: list[list[bytes]] = []
    taken: list[list[str]] = []

    async def server(task_status):
        await serve_on_loopback(_postfix_like(connections, taken, pipelining, first_ends),
                                task_status)

    port = await nursery.start(server)
    stale = [f"perm{n}@mixed.test" for n in range(100)]
    valid = [f"valid{n}@mixed.test" for n in range(50)]
    results, _events = await deliver(tmp_path, snapshot(), NextHop("relay", "127.0.0.1", port),
                                     stale + valid)
    outcome = {r.address: (r.outcome, r.status) for r in results}
    assert {outcome[a] for a in stale} == {("failed", "5.1.1")}
    assert {outcome[a] for a in valid} == {("delivered", "2.0.0")}
    assert taken == [valid]
    assert len(connections) == 2
