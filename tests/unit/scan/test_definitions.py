"""Definitions packages (shared/definitions.py) and `mailmoat definitions`: build, verify,
install, atomic switch with previous kept, rollback, refusals that change nothing."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import definitions as defs
from tests.support.definitions import packaged_spam_files

NDB = "T.One:0:*:" + b"MAILMOAT-DEFINITIONS-TEST-ONE".hex() + "\n"


def key_pair():
    key = Ed25519PrivateKey.generate()
    return key, defs.public_key_b64(key)


def source(tmp_path: Path, text: str = NDB, name="src") -> Path:
    src = tmp_path / name
    src.mkdir(exist_ok=True)
    (src / "test.ndb").write_text(text)
    return src


def build(tmp_path, key, version="2026-12-01", revision=1, text=NDB, out="p.mmdef"):
    path = tmp_path / out
    defs.build_package(source(tmp_path, text, out + ".src"), key, path, version=version,
                       revision=revision)
    return path


def rewrite_member(package: Path, name: str, change) -> Path:
    with tarfile.open(package) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    members[name] = change(members[name])
    out = package.with_name("tampered-" + package.name)
    with tarfile.open(out, "w:gz") as tar:
        for n, data in members.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def test_build_verify_install_and_current(tmp_path):
    key, public = key_pair()
    package = build(tmp_path, key)
    manifest, files = defs.verify_package(package, [public])
    assert manifest.type == "virus" and manifest.label == "v2026-12-01-r1"
    assert files["test.ndb"] == NDB.encode()
    root = tmp_path / "home" / "definitions"
    assert defs.current(root, "virus").source == "package"          # the shipped baseline
    now = defs.install_package(package, root, [public])
    assert now.source == "installed" and now.label == "v2026-12-01-r1"
    assert (now.path / "test.ndb").read_text() == NDB
    assert os.readlink(root / "virus" / "current") == "v2026-12-01-r1"


def test_newer_switches_keeps_previous_and_rollback(tmp_path):
    key, public = key_pair()
    root = tmp_path / "defs"
    defs.install_package(build(tmp_path, key, revision=1, out="a.mmdef"), root, [public])
    defs.install_package(build(tmp_path, key, revision=2, out="b.mmdef"), root, [public])
    assert defs.installed_versions(root) == {"current": "v2026-12-01-r2",
                                             "previous": "v2026-12-01-r1"}
    defs.install_package(build(tmp_path, key, version="2026-12-02", revision=1,
                               out="c.mmdef"), root, [public])
    kept = sorted(p.name for p in (root / "virus").iterdir() if not p.is_symlink())
    assert kept == ["v2026-12-01-r2", "v2026-12-02-r1"]              # only current + previous
    assert defs.rollback(root).label == "v2026-12-01-r2"
    assert defs.installed_versions(root)["previous"] == "v2026-12-02-r1"


def test_older_or_same_is_refused_unless_allowed(tmp_path):
    key, public = key_pair()
    root = tmp_path / "defs"
    defs.install_package(build(tmp_path, key, revision=3, out="a.mmdef"), root, [public])
    with pytest.raises(defs.DefinitionsError, match="not newer"):
        defs.install_package(build(tmp_path, key, revision=2, out="b.mmdef"), root, [public])
    assert defs.install_package(tmp_path / "b.mmdef", root, [public],
                                allow_older=True).revision == 2


@pytest.mark.parametrize("tamper", ["file", "signature", "manifest", "extra", "untrusted",
                                    "missing"])
def test_tampered_package_is_refused_and_nothing_changes(tmp_path, tamper):
    key, public = key_pair()
    root = tmp_path / "defs"
    defs.install_package(build(tmp_path, key, revision=1, out="good.mmdef"), root, [public])
    before = sorted(p.name for p in (root / "virus").iterdir())
    package = build(tmp_path, key, revision=2, out="new.mmdef")
    if tamper == "file":
        bad = rewrite_member(package, "test.ndb", lambda d: d.replace(b"T.One", b"T.Two"))
    elif tamper == "signature":
        bad = rewrite_member(package, "manifest.sig", lambda d: bytes([d[0] ^ 1]) + d[1:])
    elif tamper == "manifest":
        bad = rewrite_member(package, "manifest.json", lambda d: d.replace(b'"revision": 2',
                                                                           b'"revision": 9'))
    elif tamper == "extra":
        def add(_):
            return b"x"
        with tarfile.open(package) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar}
        bad = tmp_path / "extra.mmdef"
        with tarfile.open(bad, "w:gz") as tar:
            for n, data in {**members, "evil.ndb": b"E:0:*:00112233\n"}.items():
                info = tarfile.TarInfo(n)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    elif tamper == "untrusted":
        other, _ = key_pair()
        bad = build(tmp_path, other, revision=2, out="other.mmdef")
    else:
        with tarfile.open(package) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar if m.name != "test.ndb"}
        bad = tmp_path / "missing.mmdef"
        with tarfile.open(bad, "w:gz") as tar:
            for n, data in members.items():
                info = tarfile.TarInfo(n)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with pytest.raises(defs.DefinitionsError):
        defs.install_package(bad, root, [public])
    assert sorted(p.name for p in (root / "virus").iterdir()) == before
    assert defs.current(root).revision == 1


def test_path_traversal_member_is_refused(tmp_path):
    key, public = key_pair()
    package = build(tmp_path, key)
    with tarfile.open(package) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    bad = tmp_path / "trav.mmdef"
    with tarfile.open(bad, "w:gz") as tar:
        for n, data in {**members, "../escape.ndb": b"x"}.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(defs.DefinitionsError, match="flat"):
        defs.verify_package(bad, [public])
    assert not (tmp_path / "escape.ndb").exists()


def test_no_trusted_keys_refuses(tmp_path):
    key, _ = key_pair()
    with pytest.raises(defs.DefinitionsError, match="trusted"):
        defs.verify_package(build(tmp_path, key), [])


def test_shipped_baseline_checks_its_hashes():
    base = defs.baseline("virus")
    assert base is not None and base.source == "package"
    manifest = json.loads((base.path / "manifest.json").read_text())
    assert manifest["type"] == "virus" and "mailmoat.ndb" in manifest["files"]


def test_cli_build_install_status_rollback(tmp_path, capsys):
    from shared.cli import main
    from tests.support.core import make_home
    key_file = tmp_path / "key.pem"
    assert main(["definitions", "keygen", "--out", str(key_file)]) == 0
    public = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    base64.b64decode(public)
    home = make_home(tmp_path / "home", definitions__trusted_keys=[public])
    src = source(tmp_path)
    out = tmp_path / "v.mmdef"
    assert main(["definitions", "build", str(src), "--key", str(key_file), "--version",
                 "2026-12-05", "--revision", "4", "--out", str(out)]) == 0
    assert main(["definitions", "install", str(out), "--home", str(home.root)]) == 0
    capsys.readouterr()
    assert main(["definitions", "status", "--format", "json", "--home", str(home.root)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["virus"]["version"] == "2026-12-05" and status["virus"]["revision"] == 4
    assert main(["definitions", "install", str(out), "--home", str(home.root)]) == 1
    assert "not newer" in capsys.readouterr().err
    assert main(["definitions", "rollback", "--home", str(home.root)]) == 0   # to the shipped
    assert main(["definitions", "rollback", "--home", str(home.root)]) == 0   # and back
    assert defs.current(home.definitions).label == "v2026-12-05-r4"
    assert main(["definitions", "rollback", "--type", "spam", "--home", str(home.root)]) == 1
    assert "nothing to roll back" in capsys.readouterr().err
    assert main(["definitions", "build", str(src), "--home", str(home.root)]) == 2


def test_first_spam_package_installs_over_the_shipped_spam_set(tmp_path):
    # Regression: install_package read `.source` of the current version, which was None
    # while shared/definitions.py did not know the shipped spam set.
    key, public = key_pair()
    src = tmp_path / "spam-src"
    src.mkdir()
    for name, data in packaged_spam_files().items():
        (src / name).write_bytes(data)
    package = tmp_path / "spam.mmdef"
    defs.build_package(src, key, package, kind="spam", version="2026-12-01", revision=1)
    root = tmp_path / "home" / "definitions"
    assert defs.current(root, "spam").source == "package"
    now = defs.install_package(package, root, [public])
    assert now.type == "spam" and now.source == "installed"


@pytest.mark.parametrize("kind", ["virus", "spam"])
def test_a_package_not_newer_than_the_shipped_set_is_refused(tmp_path, kind):
    # A stale package (an old file in an update directory, a mirror behind a Mailmoat
    # upgrade) must not replace the newer definitions the upgrade shipped (rule 4).
    key, public = key_pair()
    root = tmp_path / "home" / "definitions"
    shipped = defs.current(root, kind)
    assert shipped.source == "package"
    src = tmp_path / "src"
    src.mkdir()
    if kind == "spam":
        for name, data in packaged_spam_files().items():
            (src / name).write_bytes(data)
    else:
        (src / "x.ndb").write_text(NDB)
    package = tmp_path / "old.mmdef"
    defs.build_package(src, key, package, kind=kind, version=shipped.version,
                       revision=shipped.revision)
    with pytest.raises(defs.DefinitionsError, match="is not newer than the current"):
        defs.install_package(package, root, [public])
    assert defs.current(root, kind).source == "package"             # nothing changed
    assert defs.install_package(package, root, [public], allow_older=True).source == "installed"
