"""A listener process that starts on a full disk (review21a R4): it made its file of client
sessions (core/smtp/client_sessions.py) sparse and wrote its region through the mapping, so
on a full file system it died of SIGBUS (status -7), and at the core's start the core ended
with "SMTP listener 1 exited before it was ready". Now the region's blocks are allocated
first, a full disk is an OSError, and the listener counts its clients' sessions alone.

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
    assert (status, out) == (0, "LocalClientSessions 1\n"), err
    [line] = err.splitlines()
    assert line.startswith("mailmoat core (SMTP listener 1): cannot count each client's SMTP "
                           "sessions with the other listener processes ("), line
    assert "No space left on device): this process counts the sessions it serves alone" \
        in line, line


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
from core.smtp.listener_main import client_sessions
from shared.paths import DataHome
counts = client_sessions(DataHome(Path(sys.argv[1])), "smtp-client-sessions", 2, 1)
counts.opened("192.0.2.1")
print(type(counts).__name__, counts.of("192.0.2.1"))
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
    facts: dict = {}
    run = _child(_CHILD, str(path), "1")    # listener 1 starts on the full disk
    facts["second_process"] = [run.returncode, run.stderr[-2000:]]
    run = _child(_CHILD, str(path), "0")    # listener 0 restarts on it
    facts["first_process_again"] = [run.returncode, run.stderr[-2000:]]
    run = _child(_LISTENER, str(home))
    facts["listener"] = [run.returncode, run.stdout, run.stderr[-2000:]]
    return facts


if __name__ == "__main__":
    result = _scenario(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(result, default=str))
