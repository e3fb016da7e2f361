"""A change of the SMTP listener processes (smtp.listener_processes, or smtp.max_incoming
across their count) applies without a refused connection, a cut session or a lost message:
the new listeners open beside the old ones, which stop accepting and let their open
sessions finish (life19 C1; core/smtp/listeners.py `Listeners`)."""

from __future__ import annotations

import json
import smtplib
import sys

import pytest
import trio

import core.smtp.listeners as listeners_module
from core.app import run_core
from tests.support.core import listener_pids, make_home, set_settings
from tests.support.waiting import until

# listener processes start in a few hundred ms each: run by `make test-slow`
pytestmark = [pytest.mark.trio, pytest.mark.slow]


def _home(tmp_path, sink, **changes):
    return make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}], **changes)


# The stream's client: its own process, as a sender's would be. A client thread inside the
# test's process, beside the trio core, had a session stall now and then (one in some ten
# thousand connections, with or without a change of listeners: a plain trio.serve_tcp
# did the same), which is no behaviour of a gateway's.
_STREAM_CLIENT = r"""
import json, smtplib, sys
from pathlib import Path
port, log, stop = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
n = 0
with log.open("a") as out:
    while not stop.exists():
        n += 1
        message_id = f"<stream-{n}@client.test>"
        message = (f"From: a@client.test\r\nTo: user@local.test\r\nSubject: reshape\r\n"
                   f"Message-ID: {message_id}\r\n\r\nhello\r\n").encode()
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.sendmail("a@client.test", ["user@local.test"], message)
            line = {"sent": message_id}
        except (OSError, smtplib.SMTPException) as exc:
            line = {"failed": message_id, "error": repr(exc),
                    "reset": isinstance(exc, ConnectionResetError)}
        out.write(json.dumps(line) + "\n")
        out.flush()
"""


class _Stream:
    """A process sending one message per connection, in a loop, until stopped: what it
    sent (250) and every failure (a refused or reset connection, a 421, any other
    reply)."""

    def __init__(self, port: int, directory) -> None:
        self.port = port
        self.log = directory / "stream.jsonl"
        self.stop = directory / "stream.stop"

    def lines(self) -> list[dict]:
        text = self.log.read_text() if self.log.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    @property
    def sent(self) -> list[str]:
        return [line["sent"] for line in self.lines() if "sent" in line]

    @property
    def failures(self) -> list[dict]:
        return [line for line in self.lines() if "failed" in line]

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.run_process([sys.executable, "-c", _STREAM_CLIENT, str(self.port),
                                str(self.log), str(self.stop)])

    async def goes_on(self, more: int = 3) -> None:
        """Until `more` messages more have been sent."""
        wanted = len(self.sent) + more
        await until(lambda: len(self.sent) >= wanted)


def _in_process(core, home):
    """The listener inside the core listens, and no listener process is left."""
    return lambda: core.server.bound and not listener_pids(home)


def _processes(home, count: int):
    """`count` listener processes."""
    return lambda: len(listener_pids(home)) == count


async def test_a_change_of_the_listener_count_refuses_no_connection_and_loses_no_message(
        tmp_path, sink, nursery):
    home = _home(tmp_path, sink, smtp__listener_processes=1)
    core = await nursery.start(run_core, home)
    stream = _Stream(core.smtp_addresses[0][1], tmp_path)
    async with trio.open_nursery() as client:
        await client.start(stream.run)
        await stream.goes_on()
        for changes, shape in (
                ({"smtp__listener_processes": 2}, _processes(home, 2)),
                ({"smtp__listener_processes": 1}, _in_process(core, home)),
                ({"smtp__listener_processes": 2}, _processes(home, 2)),
                # max_incoming below the process count: one, inside the core; and back
                ({"smtp__max_incoming": 1}, _in_process(core, home)),
                ({"smtp__max_incoming": 15}, _processes(home, 2))):
            set_settings(home, **changes)
            await until(shape, 30)
            await stream.goes_on()
        stream.stop.touch()
    # Nothing refused (ECONNREFUSED: the port closed for a moment), no 421 (a session cut).
    # A connection still in its handshake at the instant an old listener closes is reset
    # by the kernel (core/smtp/listen_sockets.py); its client sends again, as after a
    # refusal. An instant, not a half second: at most one such, seldom any.
    failures = stream.failures
    assert all(failure["reset"] for failure in failures), failures
    assert len(failures) <= 1, failures
    received = await sink.await_messages(len(stream.sent), 30)
    assert set(stream.sent) <= {m.message["Message-ID"] for m in received}
    core.cancel_scope.cancel()


def _in_data(port: int) -> smtplib.SMTP:
    """A session that has sent half of a message's data."""
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    client.ehlo("client.test")
    assert client.mail("a@client.test")[0] == 250
    assert client.rcpt("user@local.test")[0] == 250
    client.putcmd("data")
    assert client.getreply()[0] == 354
    client.send(b"From: a@client.test\r\nSubject: open across the change\r\n"
                b"Message-ID: <in-data@client.test>\r\n\r\nthe first half\r\n")
    return client


def _finish(client: smtplib.SMTP) -> int:
    client.send(b"the second half\r\n.\r\n")
    code = client.getreply()[0]
    client.quit()
    return code


async def test_a_session_in_data_finishes_on_the_old_listener_in_the_core(tmp_path, sink,
                                                                          nursery):
    home = _home(tmp_path, sink, smtp__listener_processes=1)
    core = await nursery.start(run_core, home)
    client = await trio.to_thread.run_sync(_in_data, core.smtp_addresses[0][1])
    set_settings(home, smtp__listener_processes=2)
    # the listener processes listen, and the listener in the core stopped accepting
    await until(lambda: len(listener_pids(home)) == 2 and not core.server.bound, 30)
    assert await trio.to_thread.run_sync(_finish, client) == 250
    [received] = await sink.await_messages(1, 30)
    assert received.message["Message-ID"] == "<in-data@client.test>"
    core.cancel_scope.cancel()


async def test_a_session_in_data_finishes_on_the_old_listener_process(tmp_path, sink,
                                                                      nursery):
    home = _home(tmp_path, sink, smtp__listener_processes=2)
    core = await nursery.start(run_core, home)
    client = await trio.to_thread.run_sync(_in_data, core.smtp_addresses[0][1])
    set_settings(home, smtp__listener_processes=1)
    # the listener in the core listens; of the old processes, the one without a session
    # has ended, and the one serving this session goes on until it ends
    await until(lambda: core.server.bound and len(listener_pids(home)) == 1, 30)
    assert await trio.to_thread.run_sync(_finish, client) == 250
    await until(_in_process(core, home), 30)
    [received] = await sink.await_messages(1, 30)
    assert received.message["Message-ID"] == "<in-data@client.test>"
    core.cancel_scope.cancel()


async def test_a_session_still_open_after_the_drain_is_told_421(tmp_path, sink, nursery,
                                                                monkeypatch):
    monkeypatch.setattr(listeners_module, "RESHAPE_DRAIN_SECONDS", 0.2)
    home = _home(tmp_path, sink, smtp__listener_processes=1)
    core = await nursery.start(run_core, home)
    client = await trio.to_thread.run_sync(
        lambda: smtplib.SMTP("127.0.0.1", core.smtp_addresses[0][1], timeout=30))
    set_settings(home, smtp__listener_processes=2)
    code, text = await trio.to_thread.run_sync(client.getreply)    # idle: not a word sent
    assert (code, text[:5]) == (421, b"4.3.2")
    client.close()
    core.cancel_scope.cancel()
