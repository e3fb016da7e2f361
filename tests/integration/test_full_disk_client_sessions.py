"""A listener process that starts on a full disk (review21a R4): it made its file of client
sessions (core/smtp/client_sessions.py) sparse and wrote its region through the mapping, so
on a full file system it died of SIGBUS (status -7), and at the core's start the core ended
with "SMTP listener 1 exited before it was ready". Now the region's blocks are allocated
first, a full disk is an OSError, and the listener counts its clients' sessions alone
(giving a client its part of the per-client limit, and trying the file again every minute:
review21d R3, tested in tests/integration/test_smtp_hostile_clients.py and
tests/unit/smtp/test_client_sessions.py).

On a real, small tmpfs in a mount namespace of the scenario's own, as
tests/integration/test_full_disk_start.py does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.namespaces import in_own_mount

# a real tmpfs filled in a namespace of its own; `make test-slow` (CI runs it)
pytestmark = pytest.mark.slow

DISK_OCTETS = 1024 * 1024


@pytest.fixture(scope="module")
def full_sessions(tmp_path_factory) -> dict:
    return in_own_mount(tmp_path_factory.mktemp("full-sessions"),
                        "tests.integration.test_full_disk_client_sessions")


def test_a_region_with_no_block_left_is_an_oserror_not_sigbus(full_sessions):
    status, err = full_sessions["second_process"]
    assert status == 1, (status, err)
    assert "No space left on device" in err, err


def test_a_process_whose_region_has_its_blocks_maps_it_on_the_full_disk(full_sessions):
    assert full_sessions["first_process_again"] == [0, ""]


def test_the_listener_then_counts_its_clients_alone_and_says_so(full_sessions):
    status, out, err = full_sessions["listener"]
    assert (status, out) == (0, "AloneClientSessions 1\n"), err
    [line] = err.splitlines()
    assert line.startswith("mailmoat core (SMTP listener 1): cannot count each client's SMTP "
                           "sessions with the other listener processes ("), line
    assert line.endswith("No space left on device): this process counts the sessions it "
                         "serves alone, a client having its part of the per-client limit "
                         "here, and tries again every minute"), line


def test_the_listener_counts_together_again_once_the_disk_has_room(full_sessions):
    """review21d R3: it counted alone until the core restarted."""
    status, out, err = full_sessions["listener_room_again"]
    assert (status, out) == (0, "AloneClientSessions 1\nTrue 2\n"), err
    assert err.splitlines()[-1] == (
        "mailmoat core (SMTP listener 1): counts each client's SMTP sessions with the other "
        "listener processes again (" + full_sessions["path"] + ")"), err


# --- the scenario, inside the namespace ----------------------------------------------------

_CHILD = """
import sys
from pathlib import Path
from core.smtp.client_sessions import SharedClientSessions
SharedClientSessions(Path(sys.argv[1]), 2, int(sys.argv[2]))
"""

_LISTENER = """
import sys
from pathlib import Path
import trio
from core.smtp.listener_main import client_sessions
from shared.paths import DataHome
from trio.testing import MockClock
from core.smtp.client_sessions import RETRY_SECONDS
async def main():
    counts = client_sessions(DataHome(Path(sys.argv[1])), "smtp-client-sessions", 2, 1)
    counts.opened("192.0.2.1")
    print(type(counts).__name__, counts.of("192.0.2.1"))
    if len(sys.argv) > 2:           # room again: tried at the next session after a minute
        Path(sys.argv[2]).unlink()
        await trio.sleep(RETRY_SECONDS)
        counts.opened("192.0.2.1")
        print(counts.is_together, counts.of("192.0.2.1"))
trio.run(main, clock=MockClock(autojump_threshold=0))
"""


def _child(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=60)


def _scenario(mount_point: Path) -> dict:
    from core.smtp.client_sessions import SharedClientSessions
    from tests.integration.test_full_disk_start import _fill

    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_OCTETS}", "tmpfs",
                    str(mount_point)], check=True)
    home = mount_point / "home"
    (home / "run").mkdir(parents=True)
    path = home / "run" / "smtp-client-sessions"
    SharedClientSessions(path, 2, 0)        # listener 0 started with room
    _fill(mount_point / "filler")
    facts: dict = {"path": str(path)}
    run = _child(_CHILD, str(path), "1")    # listener 1 starts on the full disk
    facts["second_process"] = [run.returncode, run.stderr[-2000:]]
    run = _child(_CHILD, str(path), "0")    # listener 0 restarts on it
    facts["first_process_again"] = [run.returncode, run.stderr[-2000:]]
    run = _child(_LISTENER, str(home))
    facts["listener"] = [run.returncode, run.stdout, run.stderr[-2000:]]
    run = _child(_LISTENER, str(home), str(mount_point / "filler"))
    facts["listener_room_again"] = [run.returncode, run.stdout, run.stderr[-2000:]]
    return facts


if __name__ == "__main__":
    result = _scenario(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(result, default=str))
