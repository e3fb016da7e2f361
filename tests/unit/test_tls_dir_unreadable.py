"""A tls/ that cannot be read (here: replaced by a file, the error root's chmod would give
anyone else) is a pair that does not load, not an exception: the core's and every listener
process's TlsFiles.watch looks at it once a second in their task groups, so an OSError out of
the look stopped the whole core."""

from __future__ import annotations

import shutil

from core.smtp.tls import TlsFiles
from shared import db
from shared.events import Action, EventWriter
from shared.home import initialise
from shared.paths import DataHome
from shared.tls import pair_signature


def test_a_tls_folder_that_cannot_be_read_keeps_the_pair_in_use_and_says_why(tmp_path):
    home = DataHome(tmp_path / "home")
    initialise(home, "Pass-word-1")
    writer = EventWriter(home.db, "core")
    tls = TlsFiles(home, writer)
    served = tls()
    assert served is not None
    shutil.move(home.tls_cert.parent, tmp_path / "tls-moved")
    home.tls_cert.parent.write_text("not a folder")
    assert pair_signature(home) == (("error", 20), ("error", 20))   # ENOTDIR
    tls.look()
    tls.look()          # a changed pair is reported at its second look (an install's renames)
    assert tls() is served
    writer.flush()
    conn = db.connect(home.db)
    try:
        [info] = [row["info"] for row in conn.execute(
            "SELECT info FROM events WHERE action = ?", (Action.SERVICE_START_FAILED,))]
    finally:
        conn.close()
    writer.close()
    assert "cert.pem cannot be read (Not a directory)" in info
