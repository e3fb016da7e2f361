"""Scanning engines (ARCHITECTURE: core/scan — antivirus engines, antispam engines).

Antivirus (SPEC §3 Antivirus; docs/antivirus.md):
    builtin.py     the builtin signature engine (ClamAV .ndb/.hdb/.hsb subset)
    signatures.py  signature file parsing;  matcher.py  q-gram filter + Aho-Corasick
    unpack.py      formats the engines look into beyond the decomposer
    filetypes.py   ClamAV target types, PE layout
    clamd.py       INSTREAM client for a real clamd
    engines.py     per-worker engine cache keyed by the current definitions version
    heuristics/    disguised executables, macros, PDF JavaScript, HTML smuggling
    repair.py      VBA project removal from OOXML documents
    service.py     the core side: definitions watcher, virus quarantine, outbreak, counters
    central.py     a central quarantine copy on the wire (signed fields)
    central_forwarder.py  sends virus quarantine copies to av.central_quarantine
Antispam: antispam/ (its own package).

Nothing is imported here: the antivirus modules pull in numpy and pyahocorasick, which the
antispam engine does not need. Import the module you use.
"""

__all__: list[str] = []
