"""The console on a data home whose disk is full: run inside a mount namespace of its own.

    unshare --user --map-root-user --mount python -m tests.support.full_disk_console MOUNT OUT

mounts a small tmpfs at MOUNT (seen by this process and its children only), makes a home on
it with a core status report a minute old, takes run/core.lock as a running core holds it,
logs on to a console app (Flask's test client), fills the disk to the last byte and writes
to OUT as JSON what a Save of Configuration › Setup, a Hold Queue button and the Status page
answered, and what the console logged (tests/console/test_diskfull21_console.py judges).
Nothing here asserts.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from console.app import create_app
from shared import db
from shared.home import CORE_LOCK, hold_lock, initialise
from shared.paths import DataHome
from shared.status import new_snapshot, write_snapshot
from tests.console.test_configuration import _form_fields
from tests.support.console import Console
from tests.support.core import ADMIN_PASSWORD
from tests.support.full_disk import _fill

DISK_OCTETS = 16 * 1024 * 1024


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append({"level": record.levelname, "message": record.getMessage(),
                           "traceback": bool(record.exc_info)})


def _answer(response) -> dict:
    return {"status": response.status_code, "html": response.get_data(as_text=True)}


def scenario(mount_point: Path) -> dict:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_OCTETS}", "tmpfs",
                    str(mount_point)], check=True)
    home = DataHome(mount_point / "home")
    initialise(home, ADMIN_PASSWORD)
    conn = db.connect(home.db)
    try:
        write_snapshot(conn, new_snapshot(version="0.1.0", started_at=time.time() - 3600),
                       now=time.time() - 60)
    finally:
        conn.close()
    hold_lock(home, *CORE_LOCK)     # kept until this process ends, as by a running core
    records = _Records()
    logging.getLogger("mailmoat.console").addHandler(records)
    app = create_app(home, config={"TESTING": True})
    console = Console(app, home)
    facts: dict = {"logon": console.logon().status_code, "pid": os.getpid()}
    setup = _form_fields(console, "/configuration/setup")
    setup["smtp__max_incoming"] = "20"
    hold = {"action": "reprocess", "ids": "q2bbbb"}
    before = console.settings()["smtp.max_incoming"]
    filler = mount_point / "filler"
    _fill(filler)
    records.lines.clear()       # the logon's and the pages' lines
    facts["save"] = _answer(console.post("/configuration/setup", setup))
    facts["hold"] = _answer(console.post("/configuration/hold/action", hold))
    facts["status"] = _answer(console.get("/status/"))
    facts["log"] = list(records.lines)
    facts["saved"] = console.settings()["smtp.max_incoming"] != before
    facts["commands"] = len(console.commands())
    filler.unlink()             # the same two with room: it was the disk
    facts["save_with_room"] = console.post("/configuration/setup", setup).status_code
    facts["hold_with_room"] = console.post("/configuration/hold/action", hold).status_code
    app.extensions["mailmoat"].close()
    return facts


if __name__ == "__main__":
    result = scenario(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(result, default=str))
