"""A core started on a full disk starts (limits finding B1: it exited 1 with "unexpected error:
OperationalError: disk I/O error", SQLite in WAL mode being unable to grow its -shm file, so
the queue whose delivery would free the space was never delivered).

`init` leaves a space reserve in the data home (shared/home.py); a core that cannot open its
database because the disk is full deletes it, says so in a `low_disk` event, starts, and
answers 452 to new mail while the disk is low. The next start with room makes the reserve
again. On a real, small tmpfs in a mount namespace of the scenario's own, as
tests/integration/test_virus_quarantine_retention.py does.
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.events import Action
from tests.support.namespaces import in_own_mount
from tests.support.processes import stop_process

# a real tmpfs filled in a namespace of its own: seconds; `make test-slow` (CI runs it)
pytestmark = pytest.mark.slow

DISK_OCTETS = 24 * 1024 * 1024     # the freed reserve is under SMTP's 5 % floor of this
START_SECONDS = 30


@pytest.fixture(scope="module")
def full_start(tmp_path_factory) -> dict:
    return in_own_mount(tmp_path_factory.mktemp("full-start"),
                        "tests.integration.test_full_disk_start")


def test_init_leaves_a_space_reserve_of_real_blocks(full_start):
    from shared.home import SPACE_RESERVE_OCTETS
    assert full_start["reserve_after_init"] == [SPACE_RESERVE_OCTETS, SPACE_RESERVE_OCTETS]


def test_a_core_started_on_a_full_disk_starts_and_answers_452(full_start):
    assert full_start["free_before_start"] == 0
    assert full_start["exit_status"] is None, full_start["output"]
    assert full_start["greeting"] == 220
    assert full_start["mail"].startswith("452 4.3.1"), full_start["mail"]
    assert full_start["reserve_while_full"] is False


def test_an_event_says_the_reserve_went_for_the_start(full_start):
    [event] = full_start["released"]
    assert event["rule"] == "disk.space_reserve" and event["result"] == "released"
    assert "file system was full" in event["info"] and "space reserve" in event["info"]


def test_with_no_reserve_left_one_line_names_the_full_disk(full_start):
    assert full_start["no_reserve_exit_status"] == 1
    [line] = full_start["no_reserve_output"].splitlines()
    assert line.startswith("mailmoat: the file system of ") and " is full (" in line, line
    assert "no space reserve left to release" in line


def test_mailmoat_run_started_on_a_full_disk_starts_too(full_start):
    # its own open-and-migrate came first and exited 1 on the full disk
    assert full_start["run_exit_status"] is None, full_start["run_output"]
    assert full_start["run_greeting"] == 220
    assert [e["process"] for e in full_start["run_released"]][-1:] == ["run"]


def test_the_next_start_with_room_makes_the_reserve_again(full_start):
    from shared.home import SPACE_RESERVE_OCTETS
    assert full_start["restart_exit_status"] is None, full_start["restart_output"]
    assert full_start["reserve_after_restart"] == [SPACE_RESERVE_OCTETS, SPACE_RESERVE_OCTETS]


# --- the scenario, inside the namespace ----------------------------------------------------

def _reserve(home) -> list[int] | bool:
    """[size, octets in allocated blocks] of the space reserve; False when there is none."""
    from shared.home import space_reserve
    try:
        st = os.stat(space_reserve(home))
    except FileNotFoundError:
        return False
    return [st.st_size, min(st.st_blocks * 512, st.st_size)]


def _fill(path: Path) -> None:
    """Write zeros to *path* until the file system has no block left."""
    with open(path, "wb", buffering=0) as handle:
        for size in (65536, 512):
            while True:
                try:
                    handle.write(b"\0" * size)
                except OSError:
                    break


def _start(home, port: int, log: Path, command: str = "core"
           ) -> tuple[subprocess.Popen, int | None]:
    """`mailmoat core` (or `run`) as a child; its exit status if it ended instead of
    listening."""
    process = subprocess.Popen([sys.executable, "-m", "shared.cli", command, "--home",
                                str(home.root)], stdout=open(log, "ab"),
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return process, process.returncode
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, None
        except OSError:
            time.sleep(0.05)
    return process, None


def _smtp(port: int) -> tuple[int, str]:
    """The greeting's code, and the reply to MAIL."""
    client = smtplib.SMTP()
    try:
        greeting, _ = client.connect("127.0.0.1", port)
        client.ehlo()
        code, text = client.mail("a@client.test")
        return greeting, f"{code} {text.decode()}"
    finally:
        client.close()


def _scenario(mount_point: Path) -> dict:
    from tests.support.core import make_home, stored_settings
    from tests.support.waiting import events_of

    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_OCTETS}", "tmpfs",
                    str(mount_point)], check=True)
    facts: dict = {}
    home = make_home(mount_point / "home")
    facts["reserve_after_init"] = _reserve(home)
    port = stored_settings(home)["smtp.port"]       # the database cannot be read once full
    log = mount_point.parent / "core.log"      # off the disk that fills
    log.touch()
    filler = mount_point / "filler"
    _fill(filler)
    facts["free_before_start"] = os.statvfs(mount_point).f_bavail
    process, facts["exit_status"] = _start(home, port, log)
    try:
        if facts["exit_status"] is None:
            facts["greeting"], facts["mail"] = _smtp(port)
            facts["reserve_while_full"] = _reserve(home)
            facts["released"] = [dict(row) for row in events_of(home, Action.LOW_DISK)
                                 if row["rule"] == "disk.space_reserve"]
    finally:
        stop_process(process)
    facts["output"] = log.read_text(errors="replace")[-3000:]
    # Full again, with the reserve gone: one line says why the core cannot start.
    _fill(mount_point / "filler2")
    logged = log.stat().st_size
    process, facts["no_reserve_exit_status"] = _start(home, port, log)
    stop_process(process)
    facts["no_reserve_output"] = log.read_bytes()[logged:].decode(errors="replace")
    for path in (filler, mount_point / "filler2"):
        path.unlink()
    process, facts["restart_exit_status"] = _start(home, port, log)
    stop_process(process)
    facts["restart_output"] = log.read_text(errors="replace")[-3000:]
    facts["reserve_after_restart"] = _reserve(home)
    # `mailmoat run`, what a service manager starts after a reboot, opens the database (and
    # migrates) before its core does: full again, it must start all the same.
    _fill(filler)
    process, facts["run_exit_status"] = _start(home, port, log, "run")
    try:
        if facts["run_exit_status"] is None:
            facts["run_greeting"], _ = _smtp(port)
            facts["run_released"] = [dict(row) for row in events_of(home, Action.LOW_DISK)
                                     if row["rule"] == "disk.space_reserve"]
    finally:
        stop_process(process)
    facts["run_output"] = log.read_text(errors="replace")[-3000:]
    return facts


if __name__ == "__main__":
    result = _scenario(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(result, default=str))
