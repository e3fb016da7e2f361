"""Every EICAR variant and ClamAV test file of the shared corpus through the builtin engine
with the shipped signatures (body signatures, not file hashes), and through the antivirus
check as mail. The same set in a real clamd: tests/integration/test_antivirus_clamd.py."""

from __future__ import annotations

import pytest

from core.pipeline.checks import antivirus
from core.pipeline.run import run_checks
from core.pipeline.registry import CHECKS
from core.pipeline.verdict import decide
from core.scan.signatures import load_files
from tests.unit.scan.support import (CLAMD_ONLY, SHIPPED, corpus_or_skip, manifest, message_for,
                                     settings, shipped_engine, view_of)

DEEP = {"clam_cache_emax.tgz": 20}      # nine nested .tgz: past the default container depth


def _files(*labels):
    corpus_or_skip()
    return manifest(*labels)


def _first_detection(raw, **changes):
    view = view_of(raw, **changes)
    findings = antivirus.check(view, settings(**changes))
    return view, findings


def test_shipped_set_is_body_signatures_only():
    sigs = load_files(SHIPPED.iterdir())
    assert not sigs.hashes and len(sigs.body) >= 3 and not sigs.errors
    names = {s.name for s in sigs.body}
    assert "Mailmoat.Test.EICAR" in names and "Mailmoat.Test.ClamAV-TestFile" in names


@pytest.mark.parametrize("path", _files("eicar", "clamav-test") if True else [],
                         ids=lambda p: p.name)
def test_builtin_engine_detects_corpus_file_as_mail(path):
    depth = DEEP.get(path.name)
    changes = {"container__max_depth": depth} if depth else {}
    view, findings = _first_detection(message_for(path), **changes)
    names = [f.data.get("virus") for f in findings if f.data.get("virus")]
    if path.name in CLAMD_ONLY:
        assert not names, "expected to be left to clamd"
        return
    assert names, f"{path.name}: not detected"
    assert names[0].startswith("Mailmoat.Test."), names


def test_deep_nested_archive_is_a_container_limit_at_default_depth():
    [path] = [p for p in _files("clamav-test") if p.name == "clam_cache_emax.tgz"]
    view = view_of(message_for(path))
    assert view.limit_hit is not None and view.limit_hit.limit == "container.max_depth"
    verdict = decide(run_checks(view, settings()))
    assert verdict.disposition == "drop" and verdict.rule == "container.max_depth"


def test_encrypted_eicar_goes_to_the_encrypted_container_policy():
    [path] = _files("eicar+encrypted")
    view = view_of(message_for(path))
    findings = run_checks(view, settings(), CHECKS)
    assert not [f for f in findings if f.data.get("virus")]
    assert [f.event for f in findings if f.event == "encrypted_container"]
    verdict = decide(findings)
    assert verdict.disposition == "deliver" and verdict.edits[0].event == "encrypted_container"


def test_eicar_as_bytes_anywhere_and_re_encoded():
    eng = shipped_engine()
    eicar = (corpus_or_skip() / "eicar" / "eicar.com").read_bytes()
    assert eng.scan(b"x" * 1000 + eicar + b"y" * 1000).name == "Mailmoat.Test.EICAR"
    import base64
    import gzip
    assert eng.scan(gzip.compress(eicar)) is None       # the decomposer opens gzip, not the engine
    html = b"<html><a href='data:application/octet-stream;base64," + base64.b64encode(eicar) \
        + b"'>x</a></html>"
    assert eng.scan(html).where == "data-uri"


def test_clean_corpus_files_are_not_detected():
    eng = shipped_engine()
    clean = _files("office-clean", "pdf-clean", "container")
    assert clean
    for path in clean:
        assert eng.scan(path.read_bytes()) is None, path.name
