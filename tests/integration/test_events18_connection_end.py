"""How an inbound session's end is recorded (guide Table 7-6; reports18 B1): a client that
hangs up without QUIT — above all in DATA, its message then lost — ends with a
`connection_closed` event naming the last command and the last reply, not with the
`disconnected` of a clean QUIT, which it was indistinguishable from. One end event per
connection either way.

A real `SmtpServer` on loopback and raw trio socket clients (the helpers of
test_smtp_hostile_clients).
"""

from __future__ import annotations

import pytest
import trio

from shared.events import Action
from tests.integration.test_smtp_hostile_clients import _Client, _listen

pytestmark = pytest.mark.trio


async def _ended(listener) -> list[tuple[Action, dict]]:
    """The session's end events, once there is one."""
    ends = (Action.DISCONNECTED, Action.CONNECTION_CLOSED)
    with trio.fail_after(10):
        while not [a for a, _ in listener.events.rows if a in ends]:
            await trio.sleep(0.01)
    await trio.sleep(0.05)      # a second one, were there one, would be written by now
    return [(a, f) for a, f in listener.events.rows if a in ends]


async def _envelope(client: _Client) -> None:
    assert (await client.command(b"EHLO client.test")).startswith(b"250")
    assert (await client.command(b"MAIL FROM:<a@client.test>")).startswith(b"250")
    assert (await client.command(b"RCPT TO:<b@dest.test>")).startswith(b"250")


async def test_a_hang_up_in_data_is_connection_closed_with_the_last_command_and_reply(
        tmp_path, nursery):
    listener = await _listen(nursery, tmp_path)
    client = await _Client.connect(listener.port)
    await _envelope(client)
    assert (await client.command(b"DATA")).startswith(b"354")
    await client.send(b"Subject: cut\r\n\r\npartial")
    await client.stream.aclose()                    # no final dot, no QUIT

    [(action, fields)] = await _ended(listener)
    assert action is Action.CONNECTION_CLOSED
    assert fields["connection_id"] and fields["client_ip"] == "127.0.0.1"
    assert fields["data"]["last_command"] == "DATA"
    assert fields["data"]["last_reply"].startswith("354 ")
    assert fields["data"]["message_lost"] is True
    assert fields["info"].startswith("the client closed the connection in DATA: the message "
                                     "is lost; last command: DATA; last reply: 354 ")
    assert listener.accepted == []


async def test_a_hang_up_without_quit_names_the_last_command(tmp_path, nursery):
    listener = await _listen(nursery, tmp_path)
    client = await _Client.connect(listener.port)
    await _envelope(client)
    await client.stream.aclose()

    [(action, fields)] = await _ended(listener)
    assert action is Action.CONNECTION_CLOSED and fields.get("result") is None
    assert fields["data"]["last_command"] == "RCPT"
    assert fields["data"]["last_reply"].startswith("250 ")
    assert "message_lost" not in fields["data"]
    assert fields["info"].startswith("the client closed the connection without QUIT; "
                                     "last command: RCPT; last reply: 250 ")


async def test_a_session_ended_by_quit_is_disconnected_alone(tmp_path, nursery):
    listener = await _listen(nursery, tmp_path)
    client = await _Client.connect(listener.port)
    await _envelope(client)
    assert (await client.command(b"QUIT")).startswith(b"221")
    assert await client.reply() == b""

    [(action, _)] = await _ended(listener)
    assert action is Action.DISCONNECTED
