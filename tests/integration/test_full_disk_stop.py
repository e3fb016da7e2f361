"""A core stopped while its disk is full, and a disk that fills within the resource monitor's
minute (diskfull21 A1, B2).

A1: a stop while the database was full threw away every event the core and its listener
processes held in memory (the 452 refusals of that time, the deferrals of a queue the next
hop would not take, the core's own `service_stopped`), and nothing said so. Now the event
writers of the core and of its listener processes write them into the data home's space
reserve at close, as far as the next start can still open the database
(shared/home.py `room_for_events_at_close`), and the next start, on the still-full disk,
starts. What cannot be written is said on standard error in one line.

B2: the low_disk check ran once a minute, so a disk that filled within it got its event
only once SQLite was full (kept in memory, then lost by the stop). SMTP's refusal for space
now makes the core look at once: here a listener process's (smtp.listener_processes 2).

On a real, small tmpfs in a mount namespace of the scenario's own, as
tests/integration/test_full_disk_start.py does; its helpers start and stop the core.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.events import Action
from tests.support.namespaces import in_own_mount

# a real tmpfs filled in a namespace of its own: seconds; `make test-slow` (CI runs it)
pytestmark = pytest.mark.slow

DISK_OCTETS = 24 * 1024 * 1024
WRITER_DISK_OCTETS = 4 * 1024 * 1024
LOW_DISK_WAIT_SECONDS = 20      # well inside the monitor's minute (RESOURCE_CHECK_SECONDS)


@pytest.fixture(scope="module")
def full_stop(tmp_path_factory) -> dict:
    return in_own_mount(tmp_path_factory.mktemp("full-stop"),
                        "tests.integration.test_full_disk_stop")


def test_a_refusal_for_space_has_the_low_disk_event_written_at_once(full_stop):
    assert full_stop["refused_low"].startswith("452 4.3.1"), full_stop["refused_low"]
    [event] = full_stop["low_disk_after_refusal"]
    assert event["rule"] is None and "mail queuing" in event["info"]


def test_a_refusal_for_space_at_mail_says_at_mail(full_stop):
    """diskfull21 C2: not "with this message", which has not come at MAIL."""
    infos = full_stop["rejected_452_infos"]
    assert infos and all(info.endswith("% free at MAIL") for info in infos), infos


def test_a_stop_on_a_full_disk_writes_the_events_it_holds(full_stop):
    assert full_stop["free_when_full"] == 0
    assert full_stop["refused_full"].startswith("452 4.3.1"), full_stop["refused_full"]
    assert full_stop["stop_status"] == 0, full_stop["output"]
    # the core's own last event, and the listener process's refusal of that time
    stops = full_stop["service_stopped"]
    assert len(stops) == 2 and stops[0] > full_stop["filled_at"], stops
    assert [t for t in full_stop["rejected_452"] if t > full_stop["filled_at"]], \
        full_stop["rejected_452"]
    # the deferrals of the queue the next hop would not take, while the disk was full
    assert [t for t in full_stop["deferred"] if full_stop["filled_at"] < t < stops[0]]
    assert "could not be written" not in full_stop["output"], full_stop["output"]


def test_the_next_start_on_the_still_full_disk_starts(full_stop):
    assert full_stop["restart_status"] is None, full_stop["output"]
    assert full_stop["restart_greeting"] == 220


def test_the_writer_leaves_half_the_reserve_and_says_in_one_line_what_it_lost(full_stop):
    from shared.events import EventWriter
    from shared.home import RELEASE_STEP_OCTETS, SPACE_RESERVE_OCTETS
    writer = full_stop["writer"]
    assert writer["free_before"] == 0 and writer["reserve_before"]
    # the half it did not spend is the reserve's still, in blocks of its own (review21a R1)
    assert writer["reserve_after"] == [SPACE_RESERVE_OCTETS // 2] * 2, writer
    assert writer["free_after"] < RELEASE_STEP_OCTETS, writer
    assert 0 < writer["written"] < writer["emitted"], writer
    assert writer["stored"] == writer["written"] + 1        # and the one before the fill
    # the oldest first: what is stored is a run from the start
    assert writer["stored_infos"] == list(range(writer["written"]))
    lost = writer["emitted"] - writer["written"]
    assert writer["stderr"].splitlines() == [
        f"mailmoat core: {lost} events could not be written: the data home's file system "
        f"is full; they are lost"]
    assert writer["reopened"] is True
    assert EventWriter.CLOSE_CHUNK < writer["written"]


def test_the_start_that_releases_the_half_left_says_its_size(full_stop):
    """review21d R4: it said the 1048576 octets of a whole reserve."""
    from shared.home import SPACE_RESERVE_OCTETS
    released = full_stop["writer"]["released"]
    assert released is not None and "space reserve" in released, released
    assert f"({SPACE_RESERVE_OCTETS // 2} octets) was deleted" in released, released


def test_what_other_writers_take_meanwhile_is_only_what_the_closing_one_released(full_stop):
    """review21a R1: a listener process's writer, closing first at a core's stop, deleted
    the whole reserve at once, and the core's own writer, retrying still, filled the disk
    with it: nothing was left for the core's close, or kept for the next start."""
    from shared.home import SPACE_RESERVE_OCTETS
    race = full_stop["two_writers"]
    assert race["free_before"] == 0 and race["reserve_before"]
    assert race["listener_written"] == race["listener_emitted"], race
    for when in ("after_listener_close", "before_core_close", "after_core_close"):
        assert race[when]["reserve"][0] >= SPACE_RESERVE_OCTETS // 2, (when, race)
        assert race[when]["reserve"][1] >= SPACE_RESERVE_OCTETS // 2, (when, race)
    assert race["core_written"] > 0, race
    # each process's line is its own (review21a C1)
    assert race["listener_stderr"] == "", race
    assert race["core_stderr"].startswith("mailmoat core: "), race
    assert race["listener_label"] == "core (SMTP listener 1)"
    assert race["reopened"] is True


# --- the scenario, inside the namespace ----------------------------------------------------

def _times(home, action, **where) -> list[float]:
    from tests.support.waiting import events_of
    return [row["time"] for row in events_of(home, action)
            if all(row[key] == value for key, value in where.items())]


def _core_scenario(mount_point: Path, facts: dict) -> None:
    from core.smtp.server import DISK_CHECK_SECONDS
    from tests.integration.test_full_disk_start import _fill, _smtp, _start
    from tests.support.processes import stop_process
    from tests.support.core import make_home, stored_settings
    from tests.support.full_disk import _send, fill_to
    from tests.support.sink import Sink
    from tests.support.waiting import events_of, wait_for

    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_OCTETS}", "tmpfs",
                    str(mount_point)], check=True)
    log = mount_point.parent / "core.log"      # off the disk that fills
    log.touch()
    with Sink() as sink:
        sink.tempfail_all = True        # the next hop keeps the queue: its deferrals go on
        home = make_home(mount_point / "home", smtp__listener_processes=2, routing__local=[
            {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}])
        port = stored_settings(home)["smtp.port"]
        process, facts["start_status"] = _start(home, port, log)
        try:
            # every listener process ready, not only the one that answered _start (the disk
            # filled while listener 1 still started: review21a T2)
            wait_for(lambda: events_of(home, Action.SERVICE_STARTED), 30)
            facts["queued"] = _send(port, 1)
            wait_for(lambda: events_of(home, Action.DEFERRED), 20)
            # B2: under 5 % free (3 %: room for the event), a refusal for space
            fill_to(mount_point, 0.03)
            time.sleep(DISK_CHECK_SECONDS + 0.1)    # the listener looks at the disk that often
            facts["refused_low"] = _send(port, 2)
            wait_for(lambda: events_of(home, Action.LOW_DISK), LOW_DISK_WAIT_SECONDS)
            facts["low_disk_after_refusal"] = [dict(row) for row in
                                               events_of(home, Action.LOW_DISK)]
            # A1: full to the last byte; the deferrals go on, a client is refused, a stop
            facts["filled_at"] = time.time()
            _fill(mount_point / "filler2")
            facts["free_when_full"] = os.statvfs(mount_point).f_bavail
            time.sleep(DISK_CHECK_SECONDS + 0.1)
            facts["refused_full"] = _send(port, 3)
            time.sleep(3)                           # a deferral or two more, in memory
        finally:
            stop_process(process)
        facts["stop_status"] = process.returncode
        process, facts["restart_status"] = _start(home, port, log)
        try:
            if facts["restart_status"] is None:
                facts["restart_greeting"], _ = _smtp(port)
                # started in full (a stop before its listeners are all ready writes no
                # service_stopped)
                wait_for(lambda: len(events_of(home, Action.SERVICE_STARTED)) == 2, 30)
        finally:
            stop_process(process)
    for name in ("filler", "filler2"):
        (mount_point / name).unlink()
    facts["output"] = log.read_text(errors="replace")[-3000:]
    facts["service_stopped"] = _times(home, Action.SERVICE_STOPPED)
    facts["rejected_452"] = _times(home, Action.REJECTED, result="452")
    facts["rejected_452_infos"] = [row["info"] for row in events_of(home, Action.REJECTED)
                                   if row["result"] == "452"]
    facts["deferred"] = _times(home, Action.DEFERRED)


def _writer_scenario(mount_point: Path, facts: dict) -> None:
    """The core's event writer alone on a disk of its own, full at its close with more
    pending than half the space reserve holds."""
    from shared import db
    from shared.events import EventWriter
    from shared.home import open_db, open_db_at_start, room_for_events_at_close, space_reserve
    from tests.integration.test_full_disk_start import _fill
    from tests.support.core import make_home

    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={WRITER_DISK_OCTETS}", "tmpfs",
                    str(mount_point)], check=True)
    home = make_home(mount_point / "home")
    writer = EventWriter(home.db, "core", room_at_close=room_for_events_at_close(home))
    writer.record(Action.SERVICE_STARTED, info="before")
    writer.flush()                          # its connection is open, as a core's is
    _fill(mount_point / "filler")
    facts["free_before"] = os.statvfs(mount_point).f_bavail
    facts["reserve_before"] = space_reserve(home).exists()
    facts["emitted"] = 3000                 # some 2 MB: more than half the reserve holds
    for i in range(facts["emitted"]):
        writer.record(Action.DEFERRED, info=str(i), data={"padding": "x" * 500})
    facts["stderr"] = _closed(writer)
    facts["written"] = writer.written - 1
    facts["reserve_after"] = _reserve(home)
    st = os.statvfs(mount_point)
    facts["free_after"] = st.f_bavail * st.f_frsize
    conn = open_db(home)                    # the next start's open, on the full disk
    try:
        facts["reopened"] = True
        facts["stored"] = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        facts["stored_infos"] = [int(row[0]) for row in conn.execute(
            "SELECT info FROM events WHERE action = ? ORDER BY id", (str(Action.DEFERRED),))]
    finally:
        conn.close()
    # A start that must release the half left (review21d R4): the database's WAL files
    # gone, as after a stop with room, then the disk full to its last block.
    (mount_point / "filler").unlink()
    db.connect(home.db).close()
    _fill(mount_point / "filler")
    conn, facts["released"] = open_db_at_start(home)
    conn.close()


def _reserve(home) -> list[int]:
    """The space reserve's size and the octets of its blocks; [0, 0] when it is gone."""
    from shared.home import space_reserve
    try:
        st = os.stat(space_reserve(home))
    except FileNotFoundError:
        return [0, 0]
    return [st.st_size, st.st_blocks * 512]


def _two_writers_scenario(mount_point: Path, facts: dict) -> None:
    """As at a core's stop on a full disk: a listener process's writer closes first while
    the core's, with a queue's deferrals pending, retries; then the core's closes."""
    from core.smtp.listener_main import said_as
    from shared.disk import OUT_OF_SPACE_RETRY_SECONDS
    from shared.events import EventWriter
    from shared.home import open_db_at_start, room_for_events_at_close, space_reserve
    from tests.integration.test_full_disk_start import _fill
    from tests.support.core import make_home

    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={WRITER_DISK_OCTETS}", "tmpfs",
                    str(mount_point)], check=True)
    home = make_home(mount_point / "home")
    facts["listener_label"] = said_as(1)
    core = EventWriter(home.db, "core", room_at_close=room_for_events_at_close(home))
    listener = EventWriter(home.db, "core", room_at_close=room_for_events_at_close(home),
                           said_as=said_as(1))
    for writer in (core, listener):
        writer.record(Action.SERVICE_STARTED, info="before")
        writer.flush()
    _fill(mount_point / "filler")
    facts["free_before"] = os.statvfs(mount_point).f_bavail
    facts["reserve_before"] = space_reserve(home).exists()
    for i in range(3000):
        core.record(Action.DEFERRED, info=str(i), data={"padding": "x" * 300})
    facts["listener_emitted"] = 20
    for i in range(facts["listener_emitted"]):
        listener.record(Action.REJECTED, info=str(i))
    time.sleep(OUT_OF_SPACE_RETRY_SECONDS * 1.5)     # both are retrying
    facts["listener_stderr"] = _closed(listener)
    facts["listener_written"] = listener.written - 1
    facts["after_listener_close"] = {"reserve": _reserve(home)}
    time.sleep(OUT_OF_SPACE_RETRY_SECONDS * 2.5)     # the core's writer tries twice more
    facts["before_core_close"] = {"reserve": _reserve(home)}
    facts["core_stderr"] = _closed(core)
    facts["core_written"] = core.written - 1
    facts["after_core_close"] = {"reserve": _reserve(home)}
    conn, _ = open_db_at_start(home)        # the next start, on the still-full disk
    conn.close()
    facts["reopened"] = True


def _scenario(mount_point: Path) -> dict:
    facts: dict = {}
    _core_scenario(mount_point, facts)
    for name, scenario in (("writer", _writer_scenario),
                           ("two_writers", _two_writers_scenario)):
        disk = mount_point.parent / f"{name}-disk"
        disk.mkdir()
        facts[name] = {}
        scenario(disk, facts[name])
    return facts


def _closed(writer) -> str:
    """Close an event writer; what it said on standard error."""
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        writer.close()
    return said.getvalue()


if __name__ == "__main__":
    result = _scenario(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(result, default=str))
