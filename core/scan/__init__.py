"""Antivirus engines and heuristics (SPEC §3 Antivirus; docs/antivirus.md).

    builtin.py     the builtin signature engine (ClamAV .ndb/.hdb/.hsb subset)
    signatures.py  signature file parsing;  matcher.py  q-gram filter + Aho-Corasick
    unpack.py      formats the engines look into beyond the decomposer
    clamd.py       INSTREAM client for a real clamd
    engines.py     per-worker engine cache keyed by the current definitions version
    heuristics/    disguised executables, macros, PDF JavaScript, HTML smuggling
    repair.py      VBA project removal from OOXML documents
    service.py     the core side: definitions watcher, virus quarantine, outbreak, counters
"""

from core.scan.builtin import BuiltinEngine, Detection
from core.scan.clamd import ClamdEngine, ScanError
from core.scan.engines import RUNTIME_DEFINITIONS, engines_for

__all__ = ["BuiltinEngine", "Detection", "ClamdEngine", "ScanError", "RUNTIME_DEFINITIONS",
           "engines_for"]
