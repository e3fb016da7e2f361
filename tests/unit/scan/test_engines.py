"""Engines per worker process (core/scan/engines.py): one builtin engine per definitions
version directory; a new current version is a new engine for the next message, while an
engine already handed out keeps scanning with its own signatures (a message in flight)."""

from __future__ import annotations

from core.scan import engines
from tests.support.mail import EICAR
from tests.unit.scan.support import SHIPPED, settings


def test_without_runtime_key_the_shipped_set_is_used():
    engines.clear_cache()
    [engine] = engines.engines_for(settings())
    assert engine.label == str(SHIPPED)
    assert engine.scan(EICAR).name == "Mailmoat.Test.EICAR"


def test_new_version_directory_is_a_new_engine_and_the_old_one_keeps_working(tmp_path):
    engines.clear_cache()
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    v1.mkdir()
    v2.mkdir()
    (v1 / "a.ndb").write_text("Old.Sig:0:*:" + b"OLD-SIGNATURE-CONTENT".hex() + "\n")
    (v2 / "a.ndb").write_text("New.Sig:0:*:" + b"NEW-SIGNATURE-CONTENT".hex() + "\n")
    [first] = engines.engines_for({**settings(), engines.RUNTIME_DEFINITIONS: str(v1)})
    assert engines.engines_for({**settings(), engines.RUNTIME_DEFINITIONS: str(v1)})[0] is first
    [second] = engines.engines_for({**settings(), engines.RUNTIME_DEFINITIONS: str(v2)})
    assert second is not first
    assert second.scan(b"..NEW-SIGNATURE-CONTENT..").name == "New.Sig"
    assert first.scan(b"..OLD-SIGNATURE-CONTENT..").name == "Old.Sig"     # still usable
    assert second.scan(b"..OLD-SIGNATURE-CONTENT..") is None


def test_engine_choice():
    chosen = engines.engines_for(settings(av__engine="both", av__clamd__address="/tmp/x.sock"))
    assert [type(e).__name__ for e in chosen] == ["BuiltinEngine", "ClamdEngine"]
    chosen = engines.engines_for(settings(av__engine="clamd"))
    assert [type(e).__name__ for e in chosen] == ["ClamdEngine"]
