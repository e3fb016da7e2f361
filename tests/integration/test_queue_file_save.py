"""Queue File Save (`diagnostics.queue_file_save`, core/spool/queue_file_save.py) end to end:
smtplib -> the core on loopback (real worker processes) -> a loopback sink.

Exploratory finding diagnostics 1: the setting was offered and saved, and nothing read it.
- off keeps nothing; all keeps the pair of every accepted message — the message as received,
  before the disclaimer edit, and its envelope as spooled — 0600 in 0700 folders; mail made
  by Mailmoat gets none; a change applies to the next message.
- on_error keeps the pair only of a message whose processing or delivery ended in an error:
  a recipient refused for good, a pipeline crash (held by the crash limit), a scan error
  delivered anyway, a delivery given up after retry_days; a delivered message leaves
  nothing, in queuefiles/ or .pending/.
- A copy that cannot be saved is one event, however many messages, and the mail goes on.
- A pending pair waits across a restart for its message's fate; one whose message is gone,
  and a half copy, are removed at start.
- No copy while the disk is low (under LOW_DISK_FRACTION), on a real small tmpfs in a mount
  namespace of the scenario's own, as tests/integration/test_virus_quarantine_retention.py.
"""

from __future__ import annotations

import json
import os
import smtplib
import stat
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest
import trio

from core.app import run_core
from shared.clock import FakeClock
from shared.events import Action
from tests.support.core import make_home, routed_home, set_settings
from tests.support.full_disk import fill_to
from tests.support.namespaces import in_own_mount
from tests.support.waiting import events_of, until, wait_for

FAULTS = str(Path(__file__).with_name("pipeline_faults.py"))
DAY_SECONDS = 86_400
MESSAGE, ENVELOPE = ".eml", ".envelope.json"


def _mail(subject: str, *, to: str = "user@local.test", headers=None, attachments=()):
    msg = EmailMessage()
    msg["From"] = "sender@client.test"
    msg["To"] = to
    msg["Subject"] = subject
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(f"The body of {subject}.\n")
    for name, data, subtype in attachments:
        msg.add_attachment(data, maintype="application", subtype=subtype, filename=name)
    return msg


def _send(port: int, msg: EmailMessage) -> str:
    """"250", or the code and text of the refusal."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.send_message(msg, from_addr="sender@client.test", to_addrs=[msg["To"]])
        return "250"
    except smtplib.SMTPResponseException as exc:
        return f"{exc.smtp_code} {exc.smtp_error.decode()}"


def _folder(home) -> Path:
    return home.diagnostics / "queuefiles"


def _saved(home) -> list[str]:
    """Names of the saved queue files (not the pending ones), sorted."""
    folder = _folder(home)
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def _pending(home) -> list[str]:
    folder = _folder(home) / ".pending"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _ids(home) -> dict[str, str]:
    """{subject: queue id} of the accepted messages."""
    return {row["subject"]: row["queue_id"] for row in events_of(home, Action.ACCEPTED)}


def _pair(queue_id: str) -> list[str]:
    return sorted([queue_id + MESSAGE, queue_id + ENVELOPE])


def _copy_events(home) -> list:
    return [row for row in events_of(home, Action.SCAN_ERROR)
            if row["rule"] == "diagnostics.queue_file_save"]


async def _ended(core, home, action, count: int) -> None:
    """Until `count` events of `action` are written (the message's end is known)."""
    await until(lambda: len(events_of(home, action)) >= count, 30, flush=core.events.aflush)


@pytest.mark.trio
async def test_off_keeps_nothing_and_a_change_applies_to_the_next_message(
        tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    assert await trio.to_thread.run_sync(_send, port, _mail("while off")) == "250"
    await trio.to_thread.run_sync(sink.wait_for, 1)
    await _ended(core, home, Action.COMPLETED, 1)
    assert _saved(home) == [] and _pending(home) == []

    set_settings(home, diagnostics__queue_file_save="all")
    await until(lambda: core.settings()["diagnostics.queue_file_save"] == "all", 10)
    assert await trio.to_thread.run_sync(_send, port, _mail("once on")) == "250"
    await trio.to_thread.run_sync(sink.wait_for, 2)
    await _ended(core, home, Action.COMPLETED, 2)
    assert _saved(home) == _pair(_ids(home)["once on"])
    core.cancel_scope.cancel()


@pytest.mark.trio
async def test_all_keeps_the_message_as_received_before_any_edit_and_its_envelope(
        tmp_path, sink, nursery):
    home = make_home(tmp_path, routing__default={"host": "127.0.0.1", "port": sink.port},
                     relay__mode="allow", disclaimer__enabled=True,
                     disclaimer__text="A DISCLAIMER ADDED ON THE WAY OUT.",
                     diagnostics__queue_file_save="all")
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    msg = _mail("edited on the way", to="someone@elsewhere.test")
    assert await trio.to_thread.run_sync(_send, port, msg) == "250"
    [delivered] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert b"A DISCLAIMER ADDED ON THE WAY OUT." in delivered.data
    await _ended(core, home, Action.COMPLETED, 1)
    queue_id = _ids(home)["edited on the way"]
    assert _saved(home) == _pair(queue_id) and _pending(home) == []

    kept = (_folder(home) / (queue_id + MESSAGE)).read_bytes()
    assert kept.startswith(b"Received: ")                       # as spooled, our trace field
    assert kept.endswith(msg.as_bytes().replace(b"\n", b"\r\n"))  # then the message as sent
    assert b"DISCLAIMER" not in kept                            # before the edit
    envelope = json.loads((_folder(home) / (queue_id + ENVELOPE)).read_bytes())
    assert envelope["queue_id"] == queue_id and envelope["sender"] == "sender@client.test"
    assert [r["address"] for r in envelope["recipients"]] == ["someone@elsewhere.test"]
    assert envelope["processed"] is False                       # as accepted, not as delivered

    for name in _saved(home):
        assert stat.S_IMODE((_folder(home) / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(_folder(home).stat().st_mode) == 0o700
    core.cancel_scope.cancel()


@pytest.mark.trio
async def test_on_error_keeps_a_bounced_message_and_nothing_of_a_delivered_one(
        tmp_path, sink, nursery):
    sink.rcpt_replies["gone@local.test"] = (550, "5.1.1 no such user")
    home = routed_home(tmp_path, sink, diagnostics__queue_file_save="on_error")
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    assert await trio.to_thread.run_sync(_send, port, _mail("fine")) == "250"
    assert await trio.to_thread.run_sync(
        _send, port, _mail("refused", to="gone@local.test")) == "250"
    await trio.to_thread.run_sync(sink.wait_for, 1)
    await _ended(core, home, Action.BOUNCED, 1)
    await _ended(core, home, Action.COMPLETED, 2)
    ids = _ids(home)
    assert _saved(home) == _pair(ids["refused"])          # not "fine", nor the bounce
    assert _pending(home) == []
    kept = (_folder(home) / (ids["refused"] + MESSAGE)).read_bytes()
    assert b"Subject: refused" in kept
    assert _copy_events(home) == []
    core.cancel_scope.cancel()


@pytest.mark.trio
async def test_on_error_keeps_a_message_that_crashed_the_pipeline_once(tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, diagnostics__queue_file_save="on_error")
    core = await nursery.start(lambda task_status: run_core(
        home, pipeline_options={"fault": FAULTS + ":crash_if_marked"},
        task_status=task_status))
    port = core.smtp_addresses[0][1]
    assert await trio.to_thread.run_sync(
        _send, port, _mail("boom", headers={"X-Test-Fault": "yes"})) == "250"
    assert await trio.to_thread.run_sync(_send, port, _mail("calm")) == "250"
    await until(lambda: len(list(home.queue("hold").iterdir())) == 1, 60)
    await _ended(core, home, Action.COMPLETED, 1)
    # the move to hold/ comes before its event is recorded (a CI flake read it too soon)
    await _ended(core, home, Action.HELD, 1)
    ids = _ids(home)
    assert [row["rule"] for row in events_of(home, Action.HELD)] == ["suspect_message"]
    assert _saved(home) == _pair(ids["boom"]) and _pending(home) == []
    assert b"X-Test-Fault: yes" in (_folder(home) / (ids["boom"] + MESSAGE)).read_bytes()
    core.cancel_scope.cancel()


@pytest.mark.trio
async def test_on_error_keeps_a_scan_error_that_is_delivered_anyway(tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, diagnostics__queue_file_save="on_error",
                       scan__unprocessable="deliver")
    core = await nursery.start(run_core, home)
    broken = _mail("broken archive", attachments=[
        ("broken.zip", b"PK\x03\x04 this is no zip at all", "zip")])
    assert await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], broken) == "250"
    await trio.to_thread.run_sync(sink.wait_for, 1)
    await _ended(core, home, Action.COMPLETED, 1)
    assert [row["rule"] for row in events_of(home, Action.SCAN_ERROR)] == [
        "scan.unprocessable"]
    assert _saved(home) == _pair(_ids(home)["broken archive"]) and _pending(home) == []
    core.cancel_scope.cancel()


@pytest.mark.trio
async def test_on_error_keeps_a_message_given_up_after_retry_days(tmp_path, sink, nursery):
    clock = FakeClock(1_800_000_000.0)
    sink.tempfail_all = True
    home = routed_home(tmp_path, sink, diagnostics__queue_file_save="on_error",
                       delivery__retry_days=1)
    core = await nursery.start(lambda task_status: run_core(home, clock=clock,
                                                            task_status=task_status))
    assert await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1],
                                         _mail("never taken")) == "250"
    await _ended(core, home, Action.DEFERRED, 1)
    queue_id = _ids(home)["never taken"]
    assert _saved(home) == [] and _pending(home) == _pair(queue_id)   # fate not known yet
    clock.advance(2 * DAY_SECONDS)
    await until(lambda: any(row["rule"] == "delivery.retry_days"
                            for row in events_of(home, Action.DELIVERY_FAILED)), 30)
    await until(lambda: _saved(home) == _pair(queue_id), 10)
    assert _pending(home) == []
    core.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_copy_that_cannot_be_saved_is_one_event_and_the_mail_goes_on(
        tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, diagnostics__queue_file_save="all")
    _folder(home).write_text("an administrator's file where the folder should be")
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    for subject in ("first", "second"):
        assert await trio.to_thread.run_sync(_send, port, _mail(subject)) == "250"
    assert len(await trio.to_thread.run_sync(sink.wait_for, 2)) == 2
    await _ended(core, home, Action.COMPLETED, 2)
    [event] = _copy_events(home)
    assert event["result"] == "failed" and event["queue_id"] is None
    assert "not saved" in event["info"] and "the message goes on" in event["info"]
    core.cancel_scope.cancel()


async def deferred_and_stopped(tmp_path, sink):
    """A data home keeping copies on error whose one message the next hop deferred, the core
    stopped: (home, queue id); its copy waits in .pending."""
    sink.tempfail_all = True
    home = routed_home(tmp_path, sink, diagnostics__queue_file_save="on_error")
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        assert await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1],
                                             _mail("deferred")) == "250"
        await _ended(core, home, Action.DEFERRED, 1)
        core.cancel_scope.cancel()
    queue_id = _ids(home)["deferred"]
    assert _pending(home) == _pair(queue_id)
    return home, queue_id


@pytest.mark.trio
async def test_a_pending_pair_waits_across_a_restart_and_orphans_are_removed(tmp_path, sink):
    home, queue_id = await deferred_and_stopped(tmp_path, sink)
    orphan = "0000000000AA"                 # a message that ended while no core ran
    for suffix in (MESSAGE, ENVELOPE):
        (_folder(home) / ".pending" / (orphan + suffix)).write_bytes(b"x")
    half_copy = _folder(home) / f".{orphan}{MESSAGE}.tmp"     # a stop in the middle of a copy
    half_copy.write_bytes(b"x")

    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        # the slow queue may be tried before SMTP answers (core/spool/manager.py rule 15):
        # the next hop still defers, so that the pair stays pending meanwhile
        assert _pending(home) == _pair(queue_id)              # the orphan is gone at start
        assert not half_copy.exists()
        sink.tempfail_all = False
        await trio.to_thread.run_sync(lambda: sink.wait_for(1, timeout=30))
        await _ended(core, home, Action.COMPLETED, 1)
        assert _pending(home) == [] and _saved(home) == []    # delivered: discarded
        core.cancel_scope.cancel()


# --- a low disk ------------------------------------------------------------------------------

DISK_OCTETS = 24 * 1024 * 1024
LOW_FREE_FRACTION = 0.075       # under LOW_DISK_FRACTION (10 %), over SMTP's 452 floor (5 %)


@pytest.fixture(scope="module")
def low_disk(tmp_path_factory) -> dict:
    return in_own_mount(tmp_path_factory.mktemp("low-disk"),
                        "tests.integration.test_queue_file_save")


def test_no_copy_is_saved_while_the_disk_is_low_and_one_event_says_so(low_disk):
    assert low_disk["with_room"] == "250" and low_disk["saved_with_room"] == 2, low_disk
    assert low_disk["free_when_low"] < 0.10, low_disk
    assert low_disk["when_low"] == ["250", "250"]              # the mail is still taken
    assert low_disk["delivered"] == 3, low_disk["log"]
    assert low_disk["saved_when_low"] == 2, low_disk["log"]    # still the first pair only
    [event] = low_disk["events"]                               # one, for two messages
    assert event["result"] == "skipped_low_disk"
    assert "free, under 10%" in event["info"]


def _low_disk_scenario(mount_point: Path) -> dict:
    """Run inside the namespace: a core on a small tmpfs with queue_file_save all, one
    message with room, two with the disk low. Facts only; the test judges them."""
    from tests.support.core import CoreProcess
    from tests.support.sink import Sink

    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_OCTETS}", "tmpfs",
                    str(mount_point)], check=True)
    facts: dict = {}
    with Sink() as sink:
        home = make_home(mount_point / "home", diagnostics__queue_file_save="all",
                         routing__local=[{"match": "local.test", "relay": "127.0.0.1",
                                          "port": sink.port}])
        with CoreProcess(home) as core:
            facts["with_room"] = _send(core.smtp_port, _mail("with room"))
            wait_for(lambda: len(_saved(home)) == 2, 30)
            facts["saved_with_room"] = len(_saved(home))
            fill_to(mount_point, LOW_FREE_FRACTION)
            facts["free_when_low"] = os.statvfs(mount_point).f_bavail / os.statvfs(
                mount_point).f_blocks
            facts["when_low"] = [_send(core.smtp_port, _mail(f"when low {n}"))
                                 for n in (1, 2)]
            wait_for(lambda: len(sink.messages) == 3, 30)
            facts["delivered"] = len(sink.messages)
            wait_for(lambda: len(events_of(home, Action.COMPLETED)) == 3, 30)
            facts["saved_when_low"] = len(_saved(home))
            facts["events"] = [dict(row) for row in _copy_events(home)]
        facts["log"] = (home.root / "core-test.log").read_text(errors="replace")[-3000:]
    return facts


if __name__ == "__main__":
    result = _low_disk_scenario(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(result, default=str))
