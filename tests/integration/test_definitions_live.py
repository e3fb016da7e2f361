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
from core.scan.antispam import definitions as spam_definitions
from shared import db, definitions as defs
from shared.cli import main
from shared.events import Action
from shared.status import read_snapshot
from tests.integration.test_antivirus_e2e import _events, _mail, _send
from tests.support.core import routed_home
from tests.support.definitions import packaged_spam_files
from tests.support.mail import EICAR
from tests.support.waiting import next_snapshot, until

# the spam set shipped in the package, which the core scores with until one is installed
PACKAGED_SPAM = spam_definitions.load(spam_definitions.PACKAGED_DIR)

# several seconds per test: run by `make test-slow` (pyproject.toml, marker "slow")
pytestmark = [pytest.mark.trio, pytest.mark.slow]

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


@pytest.mark.slow          # several seconds: `make test-slow` (CI runs it)
async def test_good_package_live_within_2s_and_tampered_refused(tmp_path, sink, nursery):
    key = Ed25519PrivateKey.generate()
    home = routed_home(tmp_path / "home", sink,
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
    # the core reported the one change; each refusal is the command's own failure row
    assert [e["result"] for e in _events(home, Action.DEFINITIONS_UPDATED)] == [
        "succeeded", "failed", "failed"]

    snap = await next_snapshot(home)
    assert snap["definitions"]["virus"]["revision"] == 1
    assert snap["definitions"]["virus"]["version"] == "2026-12-01"
    assert snap["counters"]["infections_deleted"] == 2
    core.cancel_scope.cancel()


async def test_messages_in_flight_during_a_switch_are_all_scanned_and_delivered(tmp_path, sink,
                                                                                 nursery):
    key = Ed25519PrivateKey.generate()
    home = routed_home(tmp_path / "home", sink,
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
    # the watcher takes up the switch on its own clock, maybe after the last delivery
    await until(lambda: _events(home, Action.DEFINITIONS_UPDATED), flush=core.events.aflush)
    assert not _events(home, Action.SCAN_ERROR)
    core.cancel_scope.cancel()


def _spam_source(tmp_path, name, rules_extra=(), bias=None):
    """A spam set from the packaged one (rules + model), optionally with extra rules or the
    bias moved (1000: everything is spam)."""
    import gzip
    import json
    from core.scan.antispam import definitions as spam
    src = tmp_path / f"spam-{name}"
    src.mkdir()
    for file, data in packaged_spam_files().items():     # chars.npz too, when it ships
        (src / file).write_bytes(data)
    rules = json.loads((spam.PACKAGED_DIR / spam.RULES_FILE).read_text()) + list(rules_extra)
    (src / spam.RULES_FILE).write_text(json.dumps(rules))
    model = json.loads(gzip.decompress((spam.PACKAGED_DIR / spam.MODEL_FILE).read_bytes()))
    if bias is not None:
        model["bias"] = bias
    (src / spam.MODEL_FILE).write_bytes(gzip.compress(json.dumps(model).encode()))
    return src


def _snapshot(home):
    conn = db.connect(home.db)
    try:
        return read_snapshot(conn)[0]
    finally:
        conn.close()


def _plain(subject):
    return _mail(subject=subject, body="Lunch at noon tomorrow? The usual place, see you.\n")


async def _updated_events(core, home, count):
    """The definitions_updated rows once there are `count` of them."""
    with trio.fail_after(20):
        while True:
            await core.events.aflush()
            rows = _events(home, Action.DEFINITIONS_UPDATED)
            if len(rows) >= count:
                return rows
            await trio.sleep(0.05)


async def test_packages_the_core_cannot_use_are_refused_and_scanning_goes_on(tmp_path, sink,
                                                                               nursery):
    """Regression (exploratory report D3): a signed "virus" package of spam files was
    installed and reported as in use, and from then on EICAR was delivered intact; spam
    packages with a broken rule or of virus files were reported as in use while the shipped
    set scored."""
    key = Ed25519PrivateKey.generate()
    home = routed_home(tmp_path / "home", sink, definitions__trusted_keys=[defs.public_key_b64(key)])
    core = await nursery.start(run_core, home)
    virus_src = tmp_path / "virus-src"
    virus_src.mkdir()
    (virus_src / "mailmoat.ndb").write_text("Mailmoat.Test.EICAR:0:*:" + EICAR.hex() + "\n")
    packages = {
        "virus_from_spam": ("virus", _spam_source(tmp_path, "for-virus")),
        "spam_bad_rule": ("spam", _spam_source(tmp_path, "bad", [
            {"name": "broken", "target": "body", "pattern": "(unclosed"}])),
        "spam_from_virus": ("spam", virus_src),
    }
    for name, (kind, src) in packages.items():
        package = tmp_path / f"{name}.mmdef"
        defs.build_package(src, key, package, kind=kind, version="2026-12-01", revision=1)
        code = await trio.to_thread.run_sync(main, ["definitions", "install", str(package),
                                                    "--home", str(home.root)])
        assert code == 1, name
        assert defs.installed_versions(home.definitions, kind)["current"] is None
    await trio.sleep(1.2)                           # the watcher looked more than twice
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1],
                                  _mail([("eicar.com", EICAR)]))
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert EICAR not in received.data                          # the shipped set still scans
    await core.events.aflush()
    # no set reported in use: only each refused install's own failure row
    assert [(e["result"], e["rule"]) for e in _events(home, Action.DEFINITIONS_UPDATED)] == [
        ("failed", f"definitions.{kind}") for kind, _ in packages.values()]
    snap = await trio.to_thread.run_sync(_snapshot, home)
    assert snap["definitions"]["virus"] == {"version": "2026-11-28", "revision": 0,
                                            "source": "package", "date": "2026-11-28"}
    assert snap["definitions"]["spam"]["revision"] == PACKAGED_SPAM.revision
    core.cancel_scope.cancel()


async def test_a_set_damaged_at_run_time_is_reported_as_not_in_use(tmp_path, sink, nursery):
    """Regression (exploratory report D3): the core reported an installed version it was
    not scanning with. Now it loads what is installed itself; a set that stops loading is
    reported with the reason (definitions_updated "failed", Status) and the shipped set
    scans — for virus and spam alike."""
    key = Ed25519PrivateKey.generate()
    home = routed_home(tmp_path / "home", sink, definitions__trusted_keys=[defs.public_key_b64(key)],
                 heuristic__enabled=True, heuristic__x_bulk=True)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    spam_package = tmp_path / "spam.mmdef"
    defs.build_package(_spam_source(tmp_path, "all-spam", bias=1000.0), key, spam_package,
                       kind="spam", version="2026-12-01", revision=1)
    for package in (_package(tmp_path, key, 1, name="marker"), spam_package):
        assert await trio.to_thread.run_sync(main, ["definitions", "install", str(package),
                                                    "--home", str(home.root)]) == 0
    await _updated_events(core, home, 2)
    assert await _detected(core, sink, home, 0)                  # the installed virus set
    await trio.to_thread.run_sync(_send, port, _plain("Lunch"))
    received = await trio.to_thread.run_sync(sink.wait_for, 2)
    assert email.message_from_bytes(received[-1].data)["X-Bulk"] == "100"   # installed spam

    for kind, name in (("virus", "mailmoat.ndb"), ("spam", "rules.json")):
        (home.definitions / kind / "v2026-12-01-r1" / name).write_text("damaged\n")
    failures = (await _updated_events(core, home, 4))[2:]
    assert {row["result"] for row in failures} == {"failed"}
    assert any(row["info"].startswith(
        "virus definitions: installed v2026-12-01-r1 cannot be used: mailmoat.ndb: does not "
        "match its hash; v2026-11-28-r0 (shipped) in use") for row in failures)
    snap = (await next_snapshot(home))["definitions"]
    assert (snap["virus"]["version"], snap["virus"]["source"]) == ("2026-11-28", "package")
    assert "mailmoat.ndb: does not match its hash" in snap["virus"]["problem"]
    assert (snap["spam"]["revision"], snap["spam"]["source"]) == (PACKAGED_SPAM.revision,
                                                                  "package")
    assert "rules.json: does not match its hash" in snap["spam"]["problem"]

    assert not await _detected(core, sink, home, 2)              # marker: not in the shipped
    await trio.to_thread.run_sync(_send, port, _mail([("eicar.com", EICAR)]))
    received = await trio.to_thread.run_sync(sink.wait_for, 4)
    assert EICAR not in received[-1].data                        # the shipped set scans
    await trio.to_thread.run_sync(_send, port, _plain("Lunch again"))
    received = await trio.to_thread.run_sync(sink.wait_for, 5)
    assert email.message_from_bytes(received[-1].data)["X-Bulk"] != "100"
    core.cancel_scope.cancel()
