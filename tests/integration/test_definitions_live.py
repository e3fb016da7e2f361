"""Definitions in a running core: a good package installed with `mailmoat definitions
install` is live within 2 seconds (the next message is scanned with it, no restart, the
definitions_updated event and the status snapshot say so); a package with a tampered file or
signature is refused and the running engine keeps the old version."""

from __future__ import annotations

import email
import io
from email import policy
import tarfile
import time

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.app import run_core
from shared import db, definitions as defs
from shared.cli import main
from shared.events import Action
from shared.status import read_snapshot
from tests.integration.test_antivirus_e2e import _events, _home, _mail, _send, sink  # noqa: F401

pytestmark = pytest.mark.trio

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
MARKER = b"MAILMOAT-LIVE-DEFINITIONS-MARKER-0001"


def _package(tmp_path, key, revision, extra=b"", name="p"):
    src = tmp_path / f"src-{name}"
    src.mkdir()
    (src / "mailmoat.ndb").write_text(
        "Mailmoat.Test.EICAR:0:*:" + EICAR.hex() + "\n"
        "Live.Test.Marker:0:*:" + MARKER.hex() + "\n" + extra.decode())
    out = tmp_path / f"{name}.mmdef"
    defs.build_package(src, key, out, version="2026-12-01", revision=revision)
    return out


def _tamper_file(package, out):
    with tarfile.open(package) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    members["mailmoat.ndb"] = members["mailmoat.ndb"].replace(b"Live.Test", b"Evil.Test")
    with tarfile.open(out, "w:gz") as tar:
        for n, data in members.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def _tamper_signature(package, out):
    with tarfile.open(package) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    sig = members["manifest.sig"]
    members["manifest.sig"] = bytes([sig[0] ^ 0xFF]) + sig[1:]
    with tarfile.open(out, "w:gz") as tar:
        for n, data in members.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


async def _detected(core, sink, home, count_before):
    """Send a message carrying MARKER; True when its attachment was removed."""
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1],
                                  _mail([("data.bin", b"xx" + MARKER + b"yy")]))
    received = await trio.to_thread.run_sync(sink.wait_for, count_before + 1)
    parsed = email.message_from_bytes(received[-1].data, policy=policy.default)
    return "data.bin" not in [p.get_filename() for p in parsed.iter_attachments()]


async def test_good_package_live_within_2s_and_tampered_refused(tmp_path, sink, nursery):
    key = Ed25519PrivateKey.generate()
    home = _home(tmp_path / "home", sink,
                 definitions__trusted_keys=[defs.public_key_b64(key)])
    core = await nursery.start(run_core, home)
    assert not await _detected(core, sink, home, 0)             # shipped set: unknown marker

    good = _package(tmp_path, key, 1, name="good")
    started = time.monotonic()
    assert await trio.to_thread.run_sync(main, ["definitions", "install", str(good), "--home",
                                                str(home.root)]) == 0
    await trio.sleep(max(0.0, 2.0 - (time.monotonic() - started)))   # the 2 s design figure
    assert await _detected(core, sink, home, 1)
    await core.events.aflush()
    [updated] = _events(home, Action.DEFINITIONS_UPDATED)
    assert "v2026-12-01-r1" in updated["info"]

    for make in (_tamper_file, _tamper_signature):
        bad = make(_package(tmp_path, key, 2, b"New.Sig:0:*:00112233445566778899\n",
                            name=make.__name__), tmp_path / f"{make.__name__}-bad.mmdef")
        code = await trio.to_thread.run_sync(main, ["definitions", "install", str(bad),
                                                    "--home", str(home.root)])
        assert code == 1
    await trio.sleep(1.0)
    assert await _detected(core, sink, home, 2)                 # the old version still scans
    assert defs.current(home.definitions).label == "v2026-12-01-r1"
    await core.events.aflush()
    assert len(_events(home, Action.DEFINITIONS_UPDATED)) == 1

    def snapshot():
        conn = db.connect(home.db)
        try:
            return read_snapshot(conn)[0]
        finally:
            conn.close()
    await trio.sleep(1.2)
    snap = await trio.to_thread.run_sync(snapshot)
    assert snap["definitions"]["virus"]["revision"] == 1
    assert snap["definitions"]["virus"]["version"] == "2026-12-01"
    assert snap["counters"]["infections_deleted"] == 2
    core.cancel_scope.cancel()


async def test_messages_in_flight_during_a_switch_are_all_scanned_and_delivered(tmp_path, sink,
                                                                                 nursery):
    key = Ed25519PrivateKey.generate()
    home = _home(tmp_path / "home", sink,
                 definitions__trusted_keys=[defs.public_key_b64(key)])
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    count = 12

    async def sender(i):
        await trio.to_thread.run_sync(_send, port, _mail([("f.bin", b"clean %d" % i)],
                                                          subject=f"m{i}"))

    async with trio.open_nursery() as senders:
        for i in range(count // 2):
            senders.start_soon(sender, i)
        for revision in (1, 2):
            package = _package(tmp_path, key, revision, name=f"r{revision}")
            assert defs.install_package(package, home.definitions,
                                        [defs.public_key_b64(key)]).revision == revision
            await trio.sleep(0.3)
        for i in range(count // 2, count):
            senders.start_soon(sender, i)
    received = await trio.to_thread.run_sync(sink.wait_for, count)
    assert sorted(email.message_from_bytes(m.data)["Subject"] for m in received) == \
        sorted(f"m{i}" for i in range(count))
    await core.events.aflush()
    assert not _events(home, Action.SCAN_ERROR)
    assert _events(home, Action.DEFINITIONS_UPDATED)
    core.cancel_scope.cancel()
