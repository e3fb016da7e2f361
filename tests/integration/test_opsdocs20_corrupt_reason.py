"""`mailmoat queue list corrupt` says, as LAST ERROR, why each entry is in corrupt/ (opsdocs20
C1: a held message copied into both quarantines by a restored backup left its spam copy in
corrupt/ as the second copy of the one kept in quarantine/virus, and the listing showed the
envelope's old hold reason there, which reads as what is wrong with it). The reason is what
the core noted when it set the entry aside (shared/spool.py rule 6). Real spool files, the
core's start-up recovery, the CLI as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from core.queue_commands import SET_ASIDE_UNKNOWN
from shared.spool import CORRUPT, Spool
from tests.support.core import make_home
from tests.support.spool import put_message

COMMAND = [sys.executable, "-m", "shared.cli"]
HOLD_REASON = "cannot process message: a fragment of a message sent in pieces"


def _list_corrupt(home) -> dict[str, str]:
    result = subprocess.run([*COMMAND, "queue", "list", "corrupt", "--home", str(home.root)],
                            capture_output=True, text=True, timeout=60, check=True,
                            env={k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"})
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["QUEUE", "ID", "FROM"]
    return {row.split()[1]: row for row in rows}


def test_a_second_copy_set_aside_says_where_the_message_is_kept(tmp_path):
    home = make_home(tmp_path / "home")
    spool = Spool(home.spool)
    queue_id = put_message(spool, "hold", hold_reason=HOLD_REASON)
    for quarantine in ("quarantine/spam", "quarantine/virus"):     # cp -a of a live backup
        shutil.copytree(spool.root / "hold" / queue_id, spool.root / quarantine / queue_id)
    spool.recover()                                 # what the core does at start
    assert list(spool.list("quarantine/virus")) == [queue_id]
    assert list(spool.list(CORRUPT)) == [queue_id]
    row = _list_corrupt(home)[queue_id]
    assert row.split()[:3] == ["corrupt", queue_id, "quarantine/spam"]
    assert row.endswith("a second copy: the message is kept in quarantine/virus")
    assert HOLD_REASON not in row


def test_a_damaged_entry_keeps_saying_what_is_wrong_and_an_unnoted_one_no_hold_reason(
        tmp_path):
    home = make_home(tmp_path / "home")
    spool = Spool(home.spool)
    damaged = put_message(spool, "hold", hold_reason=HOLD_REASON)
    with open(spool.message_path("hold", damaged), "ab") as message:
        message.write(b"more\r\n")                  # no longer of the size recorded
    old = put_message(spool, "hold", hold_reason=HOLD_REASON)
    os.rename(spool.root / "hold" / old, spool.root / CORRUPT / old)  # an older release's
    spool.recover()
    rows = _list_corrupt(home)
    assert rows[damaged].split()[:3] == ["corrupt", damaged, "hold"]
    assert "the message file has" in rows[damaged] and HOLD_REASON not in rows[damaged]
    assert rows[old].split()[:3] == ["corrupt", old, "?"]
    assert rows[old].endswith(SET_ASIDE_UNKNOWN) and HOLD_REASON not in rows[old]
