"""Definitions sets the core cannot use, rollback to the shipped set, and what `mailmoat
definitions status` reports (shared/definitions.py rules 5 and 6).

Regression tests for the exploratory report:
- D3: a signed package of the wrong type (a "virus" package of spam files, a "spam" package
  of virus files) or with a rule that does not compile was installed and reported as in use
  while the core silently scanned with something else; a set damaged after install was
  still reported as in use.
- D4: the first installed package could not be rolled back ("no previous ... definitions").
- D7: `definitions status` said "spam: none" on a fresh home while the shipped spam set
  scored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.scan.antispam import definitions as spam
from core.scan.engines import RUNTIME_DEFINITIONS
from core.scan.service import AntivirusService
from shared import definitions as defs
from shared.cli import main
from shared.events import Action
from tests.support.core import make_home
from tests.support.definitions import packaged_spam_files

EICAR_NDB = "Mailmoat.Test.EICAR:0:*:" + \
    b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*".hex() + "\n"
SHIPPED_VIRUS = "version 2026-11-28 revision 0 (shipped with Mailmoat)"
PACKAGED_SPAM = spam.load(spam.PACKAGED_DIR)
SHIPPED_SPAM = (f"version {PACKAGED_SPAM.version} revision {PACKAGED_SPAM.revision} "
                f"(shipped with Mailmoat)")


@pytest.fixture
def key():
    return Ed25519PrivateKey.generate()


@pytest.fixture
def home(tmp_path, key):
    return make_home(tmp_path / "home", definitions__trusted_keys=[defs.public_key_b64(key)])


def _files(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    src = tmp_path / f"src-{name}"
    src.mkdir()
    for file, data in files.items():
        (src / file).write_bytes(data)
    return src


def _spam_files(rules: list | None = None) -> dict[str, bytes]:
    packaged = json.loads((spam.PACKAGED_DIR / spam.RULES_FILE).read_text())
    return {**packaged_spam_files(),
            spam.RULES_FILE: json.dumps(packaged + (rules or [])).encode()}


def _package(tmp_path, key, kind, files, version="2026-12-01", revision=1, name=None):
    name = name or f"{kind}-{version}-r{revision}"
    out = tmp_path / f"{name}.mmdef"
    defs.build_package(_files(tmp_path, name, files), key, out, kind=kind, version=version,
                       revision=revision)
    return out


def _cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["definitions", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tree(home) -> list[str]:
    return sorted(str(p.relative_to(home.definitions)) + ("@" + os.readlink(p)
                                                        if p.is_symlink() else "")
                  for p in home.definitions.rglob("*"))


def _status(capsys, home) -> dict[str, str]:
    code, out, _ = _cli(capsys, "status", "--home", home.root)
    assert code == 0
    return dict(line.split(": ", 1) for line in out.splitlines())


class _Events:
    def __init__(self):
        self.rows = []

    def record(self, action, **fields):
        self.rows.append((action, fields))


def _core_service(home) -> tuple[AntivirusService, _Events]:
    events = _Events()
    return AntivirusService(home, events, None, lambda: {}, None), events


# --- D3: install refuses a set the core cannot use -------------------------------------------

@pytest.mark.parametrize("case", ["virus package of spam files", "spam package of virus files",
                                  "spam rule that does not compile",
                                  "virus set without a readable signature"])
def test_install_refuses_a_set_the_core_cannot_use_and_current_stays(tmp_path, key, home,
                                                                     capsys, case):
    # a good set of each type is current first: the refusal must leave it current
    for kind, files in (("virus", {"mailmoat.ndb": EICAR_NDB.encode()}),
                        ("spam", _spam_files())):
        # newer than the shipped sets, older than the refused ones below
        good = _package(tmp_path, key, kind, files, version=PACKAGED_SPAM.version,
                        revision=PACKAGED_SPAM.revision + 1)
        assert _cli(capsys, "install", good, "--home", home.root)[0] == 0
    before, status_before = _tree(home), _status(capsys, home)
    kind, files, expected = {
        "virus package of spam files": (
            "virus", _spam_files(), "no signature file (.ndb, .hdb, .hsb) in the set; it "
                                    f"holds {', '.join(sorted(_spam_files()))}"),
        "spam package of virus files": (
            "spam", {"mailmoat.ndb": EICAR_NDB.encode()}, "rules.json: missing"),
        "spam rule that does not compile": (
            "spam", _spam_files([{"name": "broken", "target": "body", "pattern": "(unclosed"}]),
            "rules.json: rule broken: bad pattern"),
        "virus set without a readable signature": (
            "virus", {"mailmoat.ndb": b"Bad.Sig:0:*:zz-not-hex\n"},
            "mailmoat.ndb: no signature could be read (first problem: mailmoat.ndb:1"),
    }[case]
    bad = _package(tmp_path, key, kind, files, version="2026-12-01")
    code, out, err = _cli(capsys, "install", bad, "--home", home.root)
    assert (code, out) == (1, "")
    assert f"install refused: {kind} definitions v2026-12-01-r1 cannot be used: {expected}" \
        in err
    assert _tree(home) == before                    # nothing written, no temp dir left
    assert _status(capsys, home) == status_before
    assert defs.current(home.definitions, kind).label == \
        f"v{PACKAGED_SPAM.version}-r{PACKAGED_SPAM.revision + 1}"


def test_unusable_set_exits_like_a_bad_hash(tmp_path, key, home, capsys):
    from tests.unit.scan.test_definitions import rewrite_member
    bad_type = _package(tmp_path, key, "virus", _spam_files(), name="bad-type")
    good = _package(tmp_path, key, "virus", {"mailmoat.ndb": EICAR_NDB.encode()}, name="good")
    bad_hash = rewrite_member(good, "mailmoat.ndb", lambda d: d.replace(b"Mailmoat", b"Evil"))
    codes = [_cli(capsys, "install", p, "--home", home.root)[0] for p in (bad_hash, bad_type)]
    assert codes == [1, 1]


def test_a_set_damaged_after_install_is_not_reported_or_used(tmp_path, key, home, capsys):
    """The core loads what is installed itself: a damaged set is reported with the reason
    and the shipped set scans (the workers get the shipped directory), never the other way
    round."""
    for kind, files in (("virus", {"mailmoat.ndb": EICAR_NDB.encode()}),
                        ("spam", _spam_files())):
        assert _cli(capsys, "install", _package(tmp_path, key, kind, files), "--home",
                    home.root)[0] == 0
    service, events = _core_service(home)
    assert service.current["virus"].label == service.current["spam"].label == "v2026-12-01-r1"
    assert service.worker_settings()[spam.RUNTIME_DIR].endswith("v2026-12-01-r1")

    installed = home.definitions / "virus" / "v2026-12-01-r1"
    (installed / "mailmoat.ndb").write_text("garbage\n")
    (home.definitions / "spam" / "v2026-12-01-r1" / spam.RULES_FILE).write_text("[")
    service.refresh()
    snap = service.status_extra["definitions"]
    assert snap["virus"]["version"] == "2026-11-28" and snap["virus"]["source"] == "package"
    assert snap["virus"]["problem"] == ("installed v2026-12-01-r1 cannot be used: "
                                        "mailmoat.ndb: does not match its hash")
    assert snap["spam"]["revision"] == PACKAGED_SPAM.revision and snap["spam"]["source"] == "package"
    assert "rules.json: does not match its hash" in snap["spam"]["problem"]
    settings = service.worker_settings()
    assert settings[RUNTIME_DEFINITIONS] == str(defs.baseline("virus").path)
    assert spam.RUNTIME_DIR not in settings            # the packaged spam set scores
    failures = [f for a, f in events.rows if a == Action.DEFINITIONS_UPDATED]
    assert [f["result"] for f in failures] == ["failed", "failed"]
    assert failures[0]["info"].startswith("virus definitions: installed v2026-12-01-r1 cannot "
                                          "be used: mailmoat.ndb: does not match its hash; "
                                          "v2026-11-28-r0 (shipped) in use")
    status = _status(capsys, home)
    assert status["virus"] == (SHIPPED_VIRUS + "; installed v2026-12-01-r1 cannot be used: "
                               "mailmoat.ndb: does not match its hash")
    assert status["spam"].startswith(SHIPPED_SPAM + "; installed v2026-12-01-r1 cannot be used")

    service.refresh()                                   # reported once, not twice a second
    assert len([a for a, _ in events.rows if a == Action.DEFINITIONS_UPDATED]) == 2


def test_an_extra_file_in_an_installed_set_makes_it_unusable(tmp_path, key, home, capsys):
    assert _cli(capsys, "install", _package(tmp_path, key, "virus",
                                            {"mailmoat.ndb": EICAR_NDB.encode()}),
                "--home", home.root)[0] == 0
    (home.definitions / "virus" / "v2026-12-01-r1" / "planted.ndb").write_text(EICAR_NDB)
    now, problem = defs.in_force(home.definitions, "virus")
    assert now.source == "package"
    assert problem == "installed v2026-12-01-r1 cannot be used: planted.ndb: not in the manifest"


# --- D4: rollback after the first install ----------------------------------------------------

@pytest.mark.parametrize("kind", ["virus", "spam"])
def test_first_install_rolls_back_to_the_shipped_set_and_forward_again(tmp_path, key, home,
                                                                      capsys, kind):
    files = {"mailmoat.ndb": EICAR_NDB.encode()} if kind == "virus" else _spam_files()
    shipped = SHIPPED_VIRUS if kind == "virus" else SHIPPED_SPAM
    assert _cli(capsys, "install", _package(tmp_path, key, kind, files), "--home",
                home.root)[0] == 0
    assert _status(capsys, home)[kind] == "version 2026-12-01 revision 1 (installed)"

    code, out, err = _cli(capsys, "rollback", "--type", kind, "--home", home.root)
    assert (code, err) == (0, "")
    assert out == (f"{kind} definitions rolled back: the shipped "
                   f"{defs.baseline(kind).label} is current (rollback again makes "
                   f"v2026-12-01-r1 current)\n")
    assert _status(capsys, home)[kind] == shipped[:-1] + ", previous v2026-12-01-r1)"
    assert defs.installed_versions(home.definitions, kind) == {"current": None,
                                                              "previous": "v2026-12-01-r1"}

    code, out, _ = _cli(capsys, "rollback", "--type", kind, "--home", home.root)
    assert (code, out) == (0, f"{kind} definitions rolled back: v2026-12-01-r1 is current\n")
    assert _status(capsys, home)[kind] == "version 2026-12-01 revision 1 (installed)"

    # back to the shipped set, then a new install: it replaced the shipped set, so a rollback
    # returns there (the set rolled back from earlier is gone)
    assert _cli(capsys, "rollback", "--type", kind, "--home", home.root)[0] == 0
    assert _cli(capsys, "install", _package(tmp_path, key, kind, files, revision=2), "--home",
                home.root)[0] == 0
    assert defs.installed_versions(home.definitions, kind) == {"current": "v2026-12-01-r2",
                                                              "previous": None}
    assert _cli(capsys, "rollback", "--type", kind, "--home", home.root)[0] == 0
    assert _status(capsys, home)[kind] == shipped[:-1] + ", previous v2026-12-01-r2)"
    assert sorted(p.name for p in (home.definitions / kind).iterdir()) == ["previous",
                                                                          "v2026-12-01-r2"]


def test_rollback_on_a_fresh_home_says_there_is_nothing_to_roll_back(home, capsys):
    code, out, err = _cli(capsys, "rollback", "--home", home.root)
    assert (code, out) == (1, "")
    assert "no virus definitions installed: the shipped set is in force" in err


def test_rollback_refuses_a_previous_set_that_does_not_load(tmp_path, key, home, capsys):
    files = {"mailmoat.ndb": EICAR_NDB.encode()}
    for revision in (1, 2):
        assert _cli(capsys, "install", _package(tmp_path, key, "virus", files,
                                                revision=revision), "--home", home.root)[0] == 0
    (home.definitions / "virus" / "v2026-12-01-r1" / "mailmoat.ndb").write_text("x")
    code, _, err = _cli(capsys, "rollback", "--home", home.root)
    assert code == 1
    assert "previous virus definitions v2026-12-01-r1 cannot be used: mailmoat.ndb: does " \
           "not match its hash" in err
    assert defs.installed_versions(home.definitions) == {"current": "v2026-12-01-r2",
                                                        "previous": "v2026-12-01-r1"}
    # review26d D3: status and the Status page's snapshot no longer list it as a way back
    reason = "mailmoat.ndb: does not match its hash"
    assert _status(capsys, home)["virus"] == (
        "version 2026-12-01 revision 2 (installed, previous v2026-12-01-r1, which a rollback "
        f"would refuse: {reason})")
    code, out, _ = _cli(capsys, "status", "--format", "json", "--home", home.root)
    facts = json.loads(out)["virus"]
    assert (facts["previous"], facts["previous_problem"]) == ("v2026-12-01-r1", reason)
    service, _events = _core_service(home)
    snap = service.status_extra["definitions"]["virus"]
    assert (snap["previous"], snap["previous_problem"]) == ("v2026-12-01-r1", reason)
    assert defs.describe(snap) == _status(capsys, home)["virus"]


def test_a_previous_set_that_is_gone_is_said_so_alike_by_status_and_rollback(
        tmp_path, key, home, capsys):
    # review27c D2: the status lines and the refused rollback worded a missing previous
    # set differently
    import shutil
    files = {"mailmoat.ndb": EICAR_NDB.encode()}
    for revision in (1, 2):
        assert _cli(capsys, "install", _package(tmp_path, key, "virus", files,
                                                revision=revision), "--home", home.root)[0] == 0
    shutil.rmtree(home.definitions / "virus" / "v2026-12-01-r1")
    assert _status(capsys, home)["virus"] == (
        "version 2026-12-01 revision 2 (installed, previous v2026-12-01-r1, which a rollback "
        "would refuse: it is no longer there)")
    code, _, err = _cli(capsys, "rollback", "--home", home.root)
    assert code == 1
    assert "previous virus definitions v2026-12-01-r1 cannot be used: it is no longer " \
           "there" in err


def test_a_rollback_to_the_shipped_set_does_not_promise_a_previous_set_that_does_not_load(
        tmp_path, key, home, capsys):
    # tester26b C1: "rollback again makes v2026-12-01-r1 current", and the next one refused it
    files = {"mailmoat.ndb": EICAR_NDB.encode()}
    assert _cli(capsys, "install", _package(tmp_path, key, "virus", files), "--home",
                home.root)[0] == 0
    (home.definitions / "virus" / "v2026-12-01-r1" / "mailmoat.ndb").write_text("x")
    code, out, _ = _cli(capsys, "rollback", "--home", home.root)
    assert (code, out) == (0, f"virus definitions rolled back: the shipped "
                              f"{defs.baseline('virus').label} is current (a second rollback "
                              f"would refuse v2026-12-01-r1: mailmoat.ndb: does not match its "
                              f"hash)\n")
    assert _cli(capsys, "rollback", "--home", home.root)[0] == 1


# --- D7: the shipped spam set is reported like the virus one ---------------------------------

def test_status_on_a_fresh_home_reports_both_shipped_sets(home, capsys):
    assert _status(capsys, home) == {"virus": SHIPPED_VIRUS, "spam": SHIPPED_SPAM}
    code, out, _ = _cli(capsys, "status", "--format", "json", "--home", home.root)
    facts = json.loads(out)["spam"]
    assert (facts["version"], facts["revision"], facts["source"]) == (
        PACKAGED_SPAM.version, PACKAGED_SPAM.revision, "package")


def test_shared_baseline_is_the_spam_engines_packaged_set():
    base = defs.baseline("spam")
    assert base.path.resolve() == spam.PACKAGED_DIR.resolve()
    assert base.label == "v{0.version}-r{0.revision}".format(spam.load(spam.PACKAGED_DIR))
