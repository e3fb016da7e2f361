"""A slow clamd costs a message one scan_error, not worker timeouts (regression, av finding 3):
each part had its own 30 s clamd deadline while the whole message has the worker's limit
(SPEC §4), so a clamd answering every part well within 30 s still got a three-attachment
message stopped three times and held as a suspect message, whatever scan.unprocessable said.

smtplib -> the core on loopback -> a fake clamd on loopback speaking INSTREAM (clamd(8)) that
answers the first stream at once and every later one after SLOW_SECONDS. The worker runs
inline, so the worker limit (core/pipeline/workers.py) can be shortened in-process: it is
SCAN_MARGIN_SECONDS + 1, which leaves the message's clamd calls one second in all, while
three slow parts take longer than the whole limit.
"""

from __future__ import annotations

import smtplib
import struct
from email.message import EmailMessage
from functools import partial

import pytest
import trio

from core.app import run_core
from core.pipeline import workers
from core.pipeline.run import SCAN_MARGIN_SECONDS
from shared.events import Action
from tests.support.core import routed_home
from tests.support.waiting import at_least, events_of, until

pytestmark = pytest.mark.trio

SLOW_SECONDS = 6.0          # per part: far below clamd.py's SCAN_SECONDS; three pass the limit
WAIT_SECONDS = 120.0        # generous: the old code took three worker limits before holding


class SlowClamd:
    """clamd's INSTREAM and PING on 127.0.0.1 (the exchange of clamd.py's header)."""

    def __init__(self):
        self.streams = 0
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            [listener] = await nursery.start(partial(trio.serve_tcp, self._session, 0,
                                                       host="127.0.0.1"))
            self.port = listener.socket.getsockname()[1]
            task_status.started(self)

    async def _session(self, stream) -> None:
        reader = _Reader(stream)
        try:
            command = await reader.until(b"\0")
            if command == b"zPING":
                await stream.send_all(b"PONG\0")
                return
            while size := struct.unpack(">I", await reader.exactly(4))[0]:
                await reader.exactly(size)
            self.streams += 1
            if self.streams > 1:
                await trio.sleep(SLOW_SECONDS)
            await stream.send_all(b"stream: OK\0")
        except (trio.BrokenResourceError, trio.ClosedResourceError, EOFError):
            pass                        # the client gave up on us: what the test is about
        finally:
            await stream.aclose()


class _Reader:
    def __init__(self, stream):
        self.stream, self.buffer = stream, bytearray()

    async def _more(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError
        self.buffer += data

    async def until(self, end: bytes) -> bytes:
        while end not in self.buffer:
            await self._more()
        line, _, rest = bytes(self.buffer).partition(end)
        self.buffer = bytearray(rest)
        return line

    async def exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            await self._more()
        data, self.buffer = bytes(self.buffer[:n]), self.buffer[n:]
        return data


def _mail() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "sender@client.test"
    msg["To"] = "user@local.test"
    msg["Subject"] = "three attachments"
    msg.set_content("Body text.\n")
    for i in range(3):
        msg.add_attachment(b"clean data %d" % i, maintype="application",
                           subtype="octet-stream", filename=f"f{i}.bin")
    return msg


def _send(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(_mail(), from_addr="sender@client.test",
                            to_addrs=["user@local.test"])


@pytest.mark.parametrize("unprocessable", ["deliver", "hold"])
async def test_slow_clamd_is_a_scan_error_handled_by_scan_unprocessable(
        tmp_path, sink, nursery, monkeypatch, unprocessable):
    limit = SCAN_MARGIN_SECONDS + 1.0
    monkeypatch.setattr(workers, "PROCESS_TIMEOUT_SECONDS", limit)
    clamd = await nursery.start(SlowClamd().serve)
    home = routed_home(tmp_path, sink, av__engine="clamd", av__clamd__address=clamd.address,
                       scan__unprocessable=unprocessable)
    core = await nursery.start(lambda task_status: run_core(
        home, pipeline_options={"inline": True, "timeout_seconds": limit},
        task_status=task_status))
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1])
    if unprocessable == "deliver":
        [delivered] = await sink.await_messages(1, timeout=WAIT_SECONDS)
        assert delivered.data.count(b"filename=") >= 3
        # the sink has it before the core writes `delivered` and lets the entry go
        await until(lambda: not list(home.queue("fast").iterdir()), WAIT_SECONDS)
    else:
        await until(lambda: list(home.queue("hold").iterdir()), WAIT_SECONDS)
        # the move into hold/ comes back from its thread before its event is recorded
        await at_least(home, Action.HELD, 1, WAIT_SECONDS, flush=core.events.aflush)
    await core.events.aflush()
    errors = events_of(home, Action.SCAN_ERROR)
    assert [e["rule"] for e in errors] == ["av.engine"], [(e["rule"], e["info"]) for e in errors]
    assert "did not answer in the time left" in errors[0]["info"]     # not "unreachable"
    held = events_of(home, Action.HELD)
    if unprocessable == "deliver":
        assert held == [] and events_of(home, Action.DELIVERED)
    else:
        assert [e["rule"] for e in held] == ["av.engine"]        # not suspect_message
    assert clamd.streams >= 1
    core.cancel_scope.cancel()
