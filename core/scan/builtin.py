"""The builtin signature engine (SPEC §3 av.engine "builtin"; docs/antivirus.md).

Reads the ClamAV signature subset of signatures.py from a definitions version directory and
scans buffers: hash signatures (MD5 / SHA-1 / SHA-256 + size) first, then body signatures
through the matcher (one per buffer kind: raw bytes, normalised HTML, normalised text),
then what unpack.py finds inside the buffer, recursively (UNPACK_DEPTH levels).

Rules
    1. `scan(data, hint)` returns the first Detection or None, `scan_all(data, hint)` every
       one (each with `where` it was found); neither raises for anything in the data (an
       unreadable embedded format is simply not looked into).
    2. An engine is immutable once built; a new definitions version builds a new engine
       (core/scan/engines.py caches one per worker process and version).
    3. A definitions directory without a single readable signature is refused
       (DefinitionsUnusable), never built into an engine that passes every virus. A bad
       line is skipped (signatures.py) as long as something is left. `load_signatures` is
       the one loader: workers build engines with it and `mailmoat definitions install`
       and the core's definitions watcher check a set with it (shared/definitions.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.scan.filetypes import normalise_html, normalise_text, pe_layout, target_types
from core.scan.matcher import Matcher
from core.scan.signatures import Offset, SignatureSet, load_files
from core.scan.unpack import Budget, expand

__all__ = ["BuiltinEngine", "Detection", "DefinitionsUnusable", "load_signatures",
           "SIGNATURE_SUFFIXES"]

UNPACK_DEPTH = 4
HTML_TARGETS = {3}
TEXT_TARGETS = {7}
SIGNATURE_SUFFIXES = (".ndb", ".hdb", ".hsb")


class DefinitionsUnusable(ValueError):
    """A virus definitions directory the engine cannot scan with (rule 3); the message names
    the file and the problem."""


def load_signatures(path: str | Path) -> SignatureSet:
    """Every signature in definitions directory `path`; raises DefinitionsUnusable when it
    holds no signature file or no signature could be read from them (rule 3)."""
    try:
        entries = sorted(Path(path).iterdir())
    except OSError as exc:
        raise DefinitionsUnusable(f"{Path(path).name}: {exc.strerror}") from None
    files = [p for p in entries if p.suffix.lower() in SIGNATURE_SUFFIXES]
    if not files:
        held = ", ".join(p.name for p in entries if p.name != "manifest.json") or "nothing"
        raise DefinitionsUnusable(f"no signature file ({', '.join(SIGNATURE_SUFFIXES)}) in "
                                  f"the set; it holds {held}")
    try:
        signatures = load_files(files)
    except OSError as exc:
        raise DefinitionsUnusable(f"{Path(exc.filename or path).name}: {exc.strerror}") \
            from None
    if not len(signatures):
        why = (f"first problem: {signatures.errors[0]}" if signatures.errors
               else f"{signatures.skipped} line(s) of kinds the engine does not read")
        raise DefinitionsUnusable(f"{', '.join(p.name for p in files)}: no signature could "
                                  f"be read ({why})")
    return signatures


@dataclass(frozen=True)
class Detection:
    name: str                 # the signature's malware name ("Eicar-Test-Signature")
    engine: str               # "builtin" | "clamd" | "heuristic"
    where: str = ""           # inside the buffer, when found in unpacked content ("ole2[3]")
    signature: str = ""       # file:line of the signature (builtin)


class BuiltinEngine:
    def __init__(self, signatures: SignatureSet, label: str = ""):
        self.label = label
        self.count = len(signatures)
        self.skipped = signatures.skipped
        raw = [s for s in signatures.body if s.target not in HTML_TARGETS | TEXT_TARGETS]
        self.raw = Matcher(raw)
        self.html = Matcher([s for s in signatures.body if s.target in HTML_TARGETS])
        self.text = Matcher([s for s in signatures.body if s.target in TEXT_TARGETS])
        self.hashes: dict[tuple[str, int | None], dict[str, str]] = {}
        self.hash_sizes: dict[str, set] = {}
        for sig in signatures.hashes:
            self.hashes.setdefault((sig.kind, sig.size), {})[sig.digest] = sig.name
            self.hash_sizes.setdefault(sig.kind, set()).add(sig.size)

    @classmethod
    def from_directory(cls, path: str | Path, label: str = "") -> "BuiltinEngine":
        """The engine of definitions directory `path`; DefinitionsUnusable (rule 3)."""
        return cls(load_signatures(path), label)

    # --- scanning ------------------------------------------------------------------------
    def scan(self, data: bytes, hint: str | None = None,
             decompose: Callable[[bytes], list[bytes]] | None = None) -> Detection | None:
        """The first detection in `data` or in what is unpacked from it (rule 1)."""
        found = self._scan(data, hint, decompose, UNPACK_DEPTH, Budget(), "", every=False)
        return found[0] if found else None

    def scan_all(self, data: bytes, hint: str | None = None,
                 decompose: Callable[[bytes], list[bytes]] | None = None) -> list[Detection]:
        """Every detection (rule 1): in `data`, and in each buffer unpacked from it — the
        members of an archive only the engine opens (ARJ, cabinet, a Deflate64 zip) are
        files of their own, each reported. A match in a buffer's own bytes that one inside
        it also makes (a member stored uncompressed) is left to that one."""
        return self._scan(data, hint, decompose, UNPACK_DEPTH, Budget(), "", every=True)

    def _scan(self, data, hint, decompose, depth, budget, where, every) -> list[Detection]:
        found = self.scan_buffer(data, hint)
        own = [Detection(found.name, found.engine, where, found.signature)] if found else []
        if (own and not every) or depth <= 0:
            return own
        inner: list[Detection] = []
        for label, item in expand(data, decompose, budget):
            inner += self._scan(item, None, decompose, depth - 1, budget,
                                f"{where}/{label}" if where else label, every)
            if inner and not every:
                return inner
        if own and any(d.name == own[0].name for d in inner):
            return inner
        return own + inner

    def scan_buffer(self, data: bytes, hint: str | None = None) -> Detection | None:
        """Signatures on this buffer only (no unpacking)."""
        found = self._hash(data)
        if found:
            return found
        types = target_types(data, hint)
        layout: list = []

        def accept(sig) -> bool:
            return sig.target in types

        def resolve(offset: Offset, size: int):
            return _resolve(offset, size, data, layout)

        sig = self.raw.first_match(data, accept, resolve) if len(self.raw) else None
        if sig is None and len(self.html) and 3 in types:
            norm = normalise_html(data)
            sig = self.html.first_match(norm, accept,
                                        lambda o, n: _resolve(o, n, norm, []))
        if sig is None and len(self.text) and 7 in types:
            norm = normalise_text(data)
            sig = self.text.first_match(norm, accept,
                                        lambda o, n: _resolve(o, n, norm, []))
        if sig is None:
            return None
        return Detection(sig.name, "builtin", "", sig.source)

    def _hash(self, data: bytes) -> Detection | None:
        size = len(data)
        for kind, sizes in self.hash_sizes.items():
            if size not in sizes and None not in sizes:
                continue
            digest = hashlib.new(kind, data).hexdigest()
            for key in ((kind, size), (kind, None)):
                name = self.hashes.get(key, {}).get(digest)
                if name:
                    return Detection(name, "builtin", "", f"{kind} hash")
        return None


def _resolve(offset: Offset, size: int, data: bytes, layout_cache: list):
    """(lo, hi) bounds for the first part's start; hi None = anywhere after lo."""
    kind = offset.kind
    if kind == "any":
        return 0, None
    if kind == "abs":
        return offset.value, offset.value + offset.shift
    if kind == "eof":
        start = size - offset.value
        return start, start + offset.shift
    if not layout_cache:
        layout_cache.append(pe_layout(data))
    layout = layout_cache[0]
    if layout is None:
        return None
    if kind == "ep":
        start = layout.entry_point + offset.value
        return start, start + offset.shift
    sections = layout.sections
    if not sections:
        return None
    if kind == "last_section":
        start = sections[-1][0] + offset.value
        return start, start + offset.shift
    if offset.section >= len(sections):
        return None
    raw, raw_size = sections[offset.section]
    if kind == "section":
        start = raw + offset.value
        return start, start + offset.shift
    return raw, raw + max(0, raw_size - 1)          # in_section
