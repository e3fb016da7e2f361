"""Durable acceptance (ARCHITECTURE invariant 1), proved two ways on a real `mailmoat core`:

1. SIGKILL at random moments while clients send: every message that got a 250 is delivered at
   least once after restarts, none is lost.
2. Because (1) passes even without fsync (the page cache survives a killed process), strace
   shows that for every accepted message, after its files were written, the sync that makes
   them durable (syncfs of the spool's file system for the batch, or fsyncs of both files and
   their directory), the rename into fast/ and the fsync of fast/ all complete before the 250
   reply is written.
"""

from __future__ import annotations

import random
import re
import smtplib
import threading
import time
from email.message import EmailMessage

import pytest

from shared import db
from shared.events import Action
from shared.spool import Spool
from tests.support.core import CoreProcess, make_home
from tests.support.sink import Sink
from tests.support.strace_log import completed_calls
from tests.support.tools import require_tool
from tests.support.waiting import events_of


def _message(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "sender@client.test"
    msg["To"] = "user@local.test"
    msg["Subject"] = f"durability {n}"
    msg["Message-ID"] = f"<durability-{n}@client.test>"
    msg.set_content(f"message number {n}\n")
    return msg


class _Sender(threading.Thread):
    """Sends numbered messages one after another; remembers those answered 250."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.acknowledged: set[str] = set()
        self.stopping = threading.Event()
        self.attempts = 0

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            self.attempts += 1
            msg = _message(n)
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
                    client.send_message(msg)
                self.acknowledged.add(msg["Message-ID"])
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)  # the core is down or was killed mid-transaction


@pytest.mark.slow
def test_sigkill_at_random_points_loses_no_acknowledged_message(tmp_path):
    rng = random.Random(20261127)
    with Sink() as sink:
        home = make_home(tmp_path, smtp__listener_processes=0, routing__local=[
            {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}])
        core = CoreProcess(home).start()
        sender = _Sender(core.smtp_port)
        sender.start()
        try:
            for _ in range(6):
                # Each kill comes after a few more acknowledgements (however loaded the
                # machine is), at a random moment of the flow.
                wanted, deadline = len(sender.acknowledged) + 4, time.monotonic() + 30
                while len(sender.acknowledged) < wanted and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 0.5))
                core.kill()
                core.start()
            time.sleep(1.0)
        finally:
            sender.stopping.set()
            sender.join(30)
        assert len(sender.acknowledged) >= 20, "too few messages to prove anything"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            delivered = {m.message["Message-ID"] for m in sink.messages}
            if sender.acknowledged <= delivered:
                break
            time.sleep(0.2)
        core.stop()
        delivered = {m.message["Message-ID"] for m in sink.messages}
        lost = sender.acknowledged - delivered
        assert not lost, f"{len(lost)} acknowledged messages were lost: {sorted(lost)[:5]}"


@pytest.mark.slow          # several seconds: `make test-slow` (CI runs it)
def test_fsync_and_rename_complete_before_each_250(tmp_path):
    strace = require_tool("strace")
    with Sink() as sink:
        home = make_home(tmp_path, smtp__listener_processes=0, routing__local=[
            {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}])
        trace = tmp_path / "strace.txt"
        core = CoreProcess(home, prefix=[
            strace, "-f", "-y", "-qq", "-s", "256", "-o", str(trace),
            "-e", "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2,sendto,write,writev,"
                  "sendmsg"])
        core.start(timeout=60)
        try:
            for n in range(3):
                with smtplib.SMTP("127.0.0.1", core.smtp_port, timeout=30) as client:
                    client.send_message(_message(n))
            sink.wait_for(3, timeout=30)
        finally:
            core.stop()
    calls = completed_calls(trace.read_text())
    replies = [c for c in calls if c.name in ("sendto", "write", "sendmsg")
               and re.search(r'"250 2\.0\.0 [^"]*queued as (\w+)', c.text)]
    assert len(replies) == 3, "expected three 250 replies in the trace"
    for reply in replies:
        queue_id = re.search(r"queued as (\w+)", reply.text).group(1)
        before = calls[:reply.index]

        def last(predicate, what):
            found = [c for c in before if c.ok and predicate(c)]
            assert found, f"{what} for {queue_id} not seen before its 250"
            return found[-1].index

        rename = last(lambda c: c.name.startswith("rename")
                      and f"/incoming/{queue_id}\"" in c.text
                      and f"/fast/{queue_id}\"" in c.text, "rename into fast/")
        written = last(lambda c: c.name in ("write", "writev")
                       and re.search(rf"/incoming/{queue_id}/(message|envelope\.json)>", c.text),
                       "writes of message and envelope")
        # Made durable between the last write and the rename: by a syncfs of the spool's
        # file system covering the whole batch (Linux), or by fsyncs of both files and of
        # the message's directory (elsewhere).
        syncfs = [c.index for c in before if c.ok and c.name == "syncfs"
                  and re.search(r"/spool>\)", c.text) and written < c.index < rename]
        if not syncfs:
            for name in ("message>", "envelope.json>", ">"):
                what = f"/incoming/{queue_id}/{name}" if name != ">" else f"/incoming/{queue_id}>"
                fsync = last(lambda c: c.name in ("fsync", "fdatasync") and what in c.text,
                             f"fsync of {what}")
                assert written < fsync < rename, f"{what} not fsync'd between write and rename"
        dir_fsync = last(lambda c: c.name in ("fsync", "fdatasync")
                         and re.search(r"/spool/fast>\)", c.text) and c.index > rename,
                         "fsync of fast/")
        assert written < rename < dir_fsync < reply.index


def _blacklisting_home(tmp_path, sink):
    """A home whose blacklist drops mail from @spam.test, with one listener process."""
    return make_home(tmp_path, smtp__listener_processes=1, blacklist__enabled=True,
                     blacklist__entries=["@spam.test"], routing__local=[
                         {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}])


def _send_blacklisted(port: int) -> None:
    msg = _message(1)
    msg.replace_header("From", "seller@spam.test")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(msg, from_addr="seller@spam.test")


@pytest.mark.slow          # several seconds: `make test-slow` (CI runs it)
def test_a_dropped_message_leaves_the_spool_only_once_its_event_is_written(tmp_path):
    """SPEC §5: every decision writes an event naming its rule. A message dropped by policy
    is deleted only after its DROPPED event is committed: with the database locked (the
    event cannot be written) it stays in fast/; a kill -9 then, and a restart, drop it again
    with the event."""
    with Sink() as sink:
        home = _blacklisting_home(tmp_path, sink)
        spool = Spool(home.spool)
        core = CoreProcess(home).start(timeout=60)
        lock = db.connect(home.db)
        try:
            time.sleep(1.0)                      # the core's start-up writes are done
            lock.execute("BEGIN IMMEDIATE")      # from now on no event can be committed
            _send_blacklisted(core.smtp_port)
            queued = list(spool.list("fast"))
            assert len(queued) == 1
            time.sleep(3.0)                      # scanned and dropped long before this
            assert list(spool.list("fast")) == queued, "deleted before its event was written"
            core.kill()
        finally:
            lock.execute("ROLLBACK")
            lock.close()
            core.kill()
        assert not events_of(home, Action.DROPPED)
        core = CoreProcess(home).start(timeout=60)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and list(spool.list("fast")):
                time.sleep(0.1)
            assert not list(spool.list("fast"))
            core.stop()
        finally:
            core.kill()
        dropped = events_of(home, Action.DROPPED)
        assert [row["queue_id"] for row in dropped] == queued
        assert dropped[0]["rule"].startswith("blacklist")
        assert sink.messages == []


@pytest.mark.slow          # several seconds: `make test-slow` (CI runs it)
def test_a_stop_right_after_a_drop_still_deletes_the_message(tmp_path):
    """A clean stop while a dropped message waits for its event to be written: the event is
    written and the message deleted, not left to be scanned (and perhaps delivered under
    other settings) after the restart while the reports say it was dropped."""
    with Sink() as sink:
        home = _blacklisting_home(tmp_path, sink)
        spool = Spool(home.spool)
        core = CoreProcess(home).start(timeout=60)
        lock = db.connect(home.db)
        try:
            time.sleep(1.0)
            lock.execute("BEGIN IMMEDIATE")      # the DROPPED event waits for the lock
            _send_blacklisted(core.smtp_port)
            queued = list(spool.list("fast"))
            time.sleep(3.0)                      # dropped by now, its event not written
            threading.Timer(2.0, lambda: lock.execute("ROLLBACK")).start()
            assert core.stop() == 0              # the stop comes while it waits
        finally:
            lock.close()
            core.kill()
        assert list(spool.list("fast")) == []
        assert [row["queue_id"] for row in events_of(home, Action.DROPPED)] == queued
