"""A real clamd started by the test (tests/support/clamd.py) with the same signature set the
builtin engine ships: every EICAR variant and ClamAV test file of the corpus detected, over
TCP and over the unix socket; the antivirus check with av.engine clamd and both."""

from __future__ import annotations

import pytest

from core.pipeline.checks import antivirus
from core.scan.clamd import ClamdEngine, ScanError
from tests.support.clamd import Clamd
from tests.unit.scan.support import (CLAMD_ONLY, SHIPPED, corpus_or_skip, manifest, message_for,
                                     settings, view_of)


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    corpus_or_skip()
    with Clamd(tmp_path_factory.mktemp("clamd"), SHIPPED.glob("*.ndb")) as server:
        yield server


def _corpus():
    if not corpus_or_skip():
        return []
    return manifest("eicar", "clamav-test")


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_clamd_detects_corpus_file_with_the_shipped_set(clamd, path):
    found = ClamdEngine(clamd.address).scan(path.read_bytes())
    assert found is not None and found.name.startswith("Mailmoat.Test."), path.name
    assert found.engine == "clamd"


def test_clamd_only_files_are_found_by_clamd_through_the_check(clamd):
    for path in manifest("clamav-test"):
        if path.name not in CLAMD_ONLY:
            continue
        changes = {"av__engine": "clamd", "av__clamd__address": clamd.address}
        findings = antivirus.check(view_of(message_for(path), **changes), settings(**changes))
        names = [f.data["virus"] for f in findings if f.data.get("virus") and f.event]
        assert names and names[0].startswith("Mailmoat.Test."), path.name


def test_unix_socket_and_encrypted_zip(clamd):
    engine = ClamdEngine(str(clamd.socket_path))
    eicar = (corpus_or_skip() / "eicar" / "eicar.com").read_bytes()
    assert engine.scan(eicar).name == "Mailmoat.Test.EICAR"
    assert engine.scan(b"clean content") is None
    # the password-protected zip is not readable to clamd either: the encrypted-container
    # policy handles it (tests/unit/scan/test_corpus_detection.py)
    assert engine.scan((corpus_or_skip() / "eicar" / "eicar_pw_infected.zip").read_bytes()) is None


def test_both_engines_agree_on_every_detected_message(clamd):
    for path in manifest("eicar"):
        changes = {"av__engine": "both", "av__clamd__address": clamd.address}
        findings = antivirus.check(view_of(message_for(path), **changes), settings(**changes))
        assert not [f for f in findings if f.event == "scan_error"]


def test_size_limit_and_stopped_clamd_raise_scan_error(clamd, tmp_path):
    with pytest.raises(ScanError, match="limit"):
        ClamdEngine(clamd.address, max_stream_octets=10).scan(b"x" * 11)
    with pytest.raises(ScanError, match="unreachable"):
        ClamdEngine("127.0.0.1:9").scan(b"x")
