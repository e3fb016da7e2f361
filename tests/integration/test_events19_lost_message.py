"""Whose message a cut DATA lost (clispec19 C4): the `connection_closed` of a client that
sent MAIL, RCPT and DATA and then hung up before the final dot carries the sender, the
recipients and the Subject as far as it was read, in the event's own columns, so the detail
report (and its CSV) says whose message was lost. Before, those columns were empty though the
session knew them.

The core in-process on loopback (run_core), raw socket clients, the home's events table.
"""

from __future__ import annotations

import socket

import pytest
import trio

from core.app import run_core
from shared.events import Action
from tests.support.core import make_home
from tests.support.waiting import at_least

pytestmark = pytest.mark.trio


def _cut_in_data(port: int, head: bytes) -> None:
    """EHLO, MAIL, two RCPTs, DATA; then `head` and a hang-up, without the final dot."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        data = sock.recv(512)
        sock.sendall(b"EHLO client.test\r\nMAIL FROM:<alice@client.test>\r\n"
                     b"RCPT TO:<bob@local.test>\r\nRCPT TO:<carol@local.test>\r\nDATA\r\n")
        while b"\r\n354 " not in data:
            data += sock.recv(4096)
        sock.sendall(head)


async def test_a_message_cut_in_data_names_its_sender_recipients_and_subject(tmp_path,
                                                                            nursery):
    home = make_home(tmp_path, relay__mode="allow")     # nothing is delivered
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]

    await trio.to_thread.run_sync(
        _cut_in_data, port, b"From: alice@client.test\r\nSubject: Quarterly figures\r\n"
                            b"\r\nthe first lines of the bo")
    [lost] = await at_least(home, Action.CONNECTION_CLOSED, 1, flush=core.events.aflush)
    assert lost["sender"] == "alice@client.test"
    assert lost["recipients"] == "bob@local.test;carol@local.test"
    assert lost["subject"] == "Quarterly figures"
    assert '"message_lost": true' in lost["data"]

    # Cut inside the header, before any Subject: the envelope still says whose it was.
    await trio.to_thread.run_sync(_cut_in_data, port, b"From: alice@client.test\r\nSubj")
    [_, lost] = await at_least(home, Action.CONNECTION_CLOSED, 2, flush=core.events.aflush)
    assert (lost["sender"], lost["recipients"]) == ("alice@client.test",
                                                    "bob@local.test;carol@local.test")
    assert lost["subject"] is None
    core.cancel_scope.cancel()


async def test_a_hang_up_outside_data_names_no_message(tmp_path, nursery):
    """Nothing was lost: the columns stay empty (the end event is the connection's)."""
    home = make_home(tmp_path, relay__mode="allow")     # nothing is delivered
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]

    def hang_up_after_rcpt():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            data = sock.recv(512)
            sock.sendall(b"EHLO client.test\r\nMAIL FROM:<alice@client.test>\r\n"
                         b"RCPT TO:<bob@local.test>\r\n")
            while data.count(b"\r\n250 ") < 3:
                data += sock.recv(4096)
    await trio.to_thread.run_sync(hang_up_after_rcpt)
    [closed] = await at_least(home, Action.CONNECTION_CLOSED, 1, flush=core.events.aflush)
    assert (closed["sender"], closed["recipients"], closed["subject"]) == (None, None, None)
    assert "message_lost" not in closed["data"]
    core.cancel_scope.cancel()
