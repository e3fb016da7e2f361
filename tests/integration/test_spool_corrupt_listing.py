"""`mailmoat queue list corrupt` (backup-restore findings 7 and 9): it names the queue each
entry was set aside from, so that a repaired virus quarantine copy goes back to its
quarantine and not into fast/, where it was scanned and delivered again; and an entry with no
envelope gets a plain line, not a Python error with a path. The CLI as a subprocess on a
temp home."""

from __future__ import annotations

import os
import subprocess
import sys

from shared.spool import Spool
from tests.support.core import make_home
from tests.support.spool import put_message

COMMAND = [sys.executable, "-m", "shared.cli"]


def _put(spool: Spool, queue: str) -> str:
    return put_message(spool, queue, recipients=("u@x.test",),
                       body=b"From: a@b.test\r\nTo: u@x.test\r\nSubject: s\r\n\r\nbody\r\n")


def test_queue_list_corrupt_says_where_each_entry_came_from(tmp_path):
    home = make_home(tmp_path / "home")
    spool = Spool(home.spool)
    copy, loose = _put(spool, "quarantine/virus"), _put(spool, "fast")
    os.unlink(spool.message_path("quarantine/virus", copy))
    os.unlink(spool.root / "fast" / loose / "envelope.json")
    (spool.root / "corrupt" / "D250OLDRELEAS").mkdir()     # set aside by an older release
    assert len(spool.recover().corrupt) == 2
    result = subprocess.run([*COMMAND, "queue", "list", "corrupt", "--home", str(home.root)],
                            capture_output=True, text=True, timeout=60, check=True,
                            env={k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"})
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["QUEUE", "ID", "FROM", "AGE"]
    [copy_row] = [r for r in rows if copy in r]
    [loose_row] = [r for r in rows if loose in r]
    [old_row] = [r for r in rows if "D250OLDRELEAS" in r]
    assert copy_row.split()[:3] == ["corrupt", copy, "quarantine/virus"]
    assert copy_row.endswith("message file missing") and "a@b.test" in copy_row
    assert loose_row.split() == ["corrupt", loose, "fast", "envelope.json", "missing"]
    assert old_row.split()[:3] == ["corrupt", "D250OLDRELEAS", "?"]
    assert "Errno" not in result.stdout and str(tmp_path) not in result.stdout
