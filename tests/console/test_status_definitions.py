"""The Status page's definitions rows say what `mailmoat definitions status` says.

Regression (exploratory report D7): the page showed the shipped virus set as
"2026-11-28 (revision 2026-11-28)" — revision 0 is falsy and the version stood in for it —
while the CLI said "revision 0"; the CLI said "spam: none" while the shipped spam set scored.
The snapshot is made by the core's own definitions watcher (core/scan/service.py).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.scan.service import AntivirusService
from shared import db
from shared import definitions as defs
from shared.cli import main
from shared.status import new_snapshot, write_snapshot
from tests.console.test_status import _row
from tests.support.core import set_settings
from tests.unit.test_definitions_usable import EICAR_NDB, SHIPPED_SPAM, _package


class _Events:
    def record(self, *args, **kwargs):
        pass


def _core_snapshot(home, clock) -> None:
    service = AntivirusService(home, _Events(), None, lambda: {}, None)
    snap = new_snapshot(version="0.1.0", hostname="gw.example.com", smtp_port=25,
                        started_at=clock.now() - 60, queues={})
    snap["definitions"] = service.status_extra["definitions"]
    conn = db.connect(home.db)
    try:
        write_snapshot(conn, snap, now=clock.now())
    finally:
        conn.close()


def test_status_page_and_cli_say_the_same_about_the_shipped_sets(admin, home, clock, capsys):
    _core_snapshot(home, clock)
    html = admin.get("/status/").get_data(as_text=True)
    capsys.readouterr()
    assert main(["definitions", "status", "--home", str(home.root)]) == 0
    cli = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert cli == {"virus": "version 2026-11-28 revision 0 (shipped with Mailmoat)",
                   "spam": SHIPPED_SPAM}
    assert _row(html, "Virus definitions") == cli["virus"]
    assert _row(html, "Spam definitions") == cli["spam"]


def test_status_page_says_why_a_rollback_would_refuse_the_previous_set(admin, home, clock,
                                                                        capsys, tmp_path):
    # review26d D3: the previous set was listed as a way back that a rollback refuses
    key = Ed25519PrivateKey.generate()
    set_settings(home, definitions__trusted_keys=[defs.public_key_b64(key)])
    for revision in (1, 2):
        package = _package(tmp_path, key, "virus", {"mailmoat.ndb": EICAR_NDB.encode()},
                           revision=revision)
        assert main(["definitions", "install", str(package), "--home", str(home.root)]) == 0
    (home.definitions / "virus" / "v2026-12-01-r1" / "mailmoat.ndb").write_text("x")
    _core_snapshot(home, clock)
    html = admin.get("/status/").get_data(as_text=True)
    capsys.readouterr()
    assert main(["definitions", "status", "--home", str(home.root)]) == 0
    cli = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert cli["virus"] == ("version 2026-12-01 revision 2 (installed, previous v2026-12-01-r1, "
                            "which a rollback would refuse: mailmoat.ndb: does not match its "
                            "hash)")
    assert _row(html, "Virus definitions") == cli["virus"]
