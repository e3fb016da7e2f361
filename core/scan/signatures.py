"""ClamAV signature files, the subset the builtin engine reads (docs/antivirus.md "Signature
formats"; ClamAV's "Creating signatures" documentation is the reference).

Hash signatures
    .hdb   MD5:Size:Name               Size may be `*` (any size)
    .hsb   SHA1-or-SHA256:Size:Name    the hash kind follows from its length (40 / 64 hex)

Body signatures
    .ndb   Name:TargetType:Offset:HexSignature[:MinFL[:MaxFL]]
    TargetType  0 any, 1 PE, 2 OLE2, 3 HTML (normalised), 4 mail, 5 graphics, 6 ELF,
                7 ASCII text (normalised), 9 Mach-O, 10 PDF, 11 Flash, 12 Java class
    Offset      `*` | n | n,m (floating: start within n..n+m) | EOF-n | EP+n | EP-n |
                Sx+n | SL+n | SEx (within section x) — the EP/S forms only for PE files
    Hex         hex bytes; `??` any byte; `a?` / `?a` nibbles; `*` any number of bytes;
                `{n}` `{-n}` `{n-}` `{n-m}` `[n-m]` gaps; `(aa|bb|cc)` alternatives of
                any length (each may use `??`); `!(aa|bb)` negated alternatives of one
                length

Not read (counted as skipped, never an error that stops loading): logical (.ldb), container
(.cdb), PE-section hash (.mdb/.msb) and bytecode signatures, the `(B)` `(L)` `(W)` anchors,
target types 8 and above 12, functional levels above FLEVEL.

A compiled body signature is a list of sub-patterns (the signature split at `*`), each a
Python regex over bytes, plus its anchor: the longest literal run (the matcher's key).
Parsing never executes anything from the file; a bad line is a `SignatureError` with the
line number, and the loader skips it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SignatureError", "BodySignature", "HashSignature", "Offset", "SignatureSet",
           "parse_ndb_line", "parse_hash_line", "load_files", "TARGET_TYPES", "FLEVEL"]

FLEVEL = 200                      # the functional level we claim (ClamAV 1.4 is ~200)
TARGET_TYPES = {0: "any", 1: "pe", 2: "ole2", 3: "html", 4: "mail", 5: "graphics", 6: "elf",
                7: "text", 9: "macho", 10: "pdf", 11: "flash", 12: "java"}
MAX_ANCHOR_OCTETS = 16
MAX_GAP = 1 << 20


class SignatureError(ValueError):
    """One signature line could not be read."""


@dataclass(frozen=True)
class Offset:
    kind: str = "any"             # any | abs | eof | ep | section | last_section | in_section
    value: int = 0                # n (for eof: bytes before the end)
    shift: int = 0                # floating: start may be value .. value+shift
    section: int = 0

    @property
    def is_any(self) -> bool:
        return self.kind == "any"


@dataclass
class BodySignature:
    name: str
    target: int
    offset: Offset
    sources: list                 # regex sources of the parts, matched in order (split at `*`)
    anchor: bytes                 # longest literal run (<= MAX_ANCHOR_OCTETS)
    anchor_part: int              # which part holds the anchor
    source: str = ""              # "file:line"
    _compiled: list | None = None

    @property
    def parts(self) -> list:
        """The compiled parts (compiled on first use: loading 100,000 signatures must not
        compile 100,000 regexes that will mostly never be needed)."""
        if self._compiled is None:
            self._compiled = [re.compile(p, re.DOTALL) for p in self.sources]
        return self._compiled


@dataclass(frozen=True)
class HashSignature:
    name: str
    kind: str                     # md5 | sha1 | sha256
    digest: str
    size: int | None              # None: any size


@dataclass
class SignatureSet:
    body: list[BodySignature] = field(default_factory=list)
    hashes: list[HashSignature] = field(default_factory=list)
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.body) + len(self.hashes)


# --- hex body ------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<byte>(?:[0-9a-fA-F]{2})+)"
    r"|(?P<any>\?\?)"
    r"|(?P<hi>[0-9a-fA-F]\?)"
    r"|(?P<lo>\?[0-9a-fA-F])"
    r"|(?P<star>\*)"
    r"|\{(?P<gap>-?\d*-?\d*)\}"
    r"|\[(?P<range>\d+-\d+)\]"
    r"|(?P<neg>!)?\((?P<alts>[0-9a-fA-F?|]+)\)"
)


def _byte(value: int) -> bytes:
    return re.escape(bytes([value]))


def _nibble_class(hex2: str) -> bytes:
    if hex2[0] == "?":
        low = int(hex2[1], 16)
        values = [(h << 4) | low for h in range(16)]
    else:
        high = int(hex2[0], 16)
        values = [(high << 4) | low for low in range(16)]
    return b"[" + b"".join(_byte(v) for v in values) + b"]"


def _hex_fragment(text: str) -> bytes:
    """A regex for a short hex string with `??` / nibbles (alternatives' members)."""
    if len(text) % 2:
        raise SignatureError(f"odd hex length in alternative {text!r}")
    out = b""
    for i in range(0, len(text), 2):
        pair = text[i:i + 2]
        if pair == "??":
            out += b"."
        elif "?" in pair:
            out += _nibble_class(pair)
        else:
            out += _byte(int(pair, 16))
    return out


def _gap(spec: str) -> tuple[int, int | None]:
    if re.fullmatch(r"\d+", spec):
        n = int(spec)
        return n, n
    if re.fullmatch(r"-\d+", spec):
        return 0, int(spec[1:])
    if re.fullmatch(r"\d+-", spec):
        return int(spec[:-1]), None
    match = re.fullmatch(r"(\d+)-(\d+)", spec)
    if match and int(match.group(1)) <= int(match.group(2)):
        return int(match.group(1)), int(match.group(2))
    raise SignatureError(f"bad gap {{{spec}}}")


def compile_hex(hexsig: str) -> tuple[list, bytes, int]:
    """(compiled parts, anchor, anchor part index) for a ClamAV hex signature."""
    parts: list[bytes] = [b""]
    literals: list[list[bytes]] = [[b""]]        # per part: literal runs
    pos = 0
    while pos < len(hexsig):
        match = _TOKEN.match(hexsig, pos)
        if not match:
            raise SignatureError(f"cannot read the signature at {hexsig[pos:pos + 12]!r}")
        pos = match.end()
        if match.group("byte"):
            run = bytes.fromhex(match.group("byte"))
            parts[-1] += re.escape(run)
            literals[-1][-1] += run
            continue
        literals[-1].append(b"")
        if match.group("any"):
            parts[-1] += b"."
        elif match.group("hi") or match.group("lo"):
            parts[-1] += _nibble_class(match.group("hi") or match.group("lo"))
        elif match.group("star"):
            parts.append(b"")
            literals.append([b""])
        elif match.group("gap") is not None or match.group("range"):
            low, high = _gap(match.group("gap") if match.group("gap") is not None
                             else match.group("range"))
            if (high or low) > MAX_GAP:
                raise SignatureError("gap too large")
            if high is None:          # {n-}: n bytes, then a part boundary like `*`
                if low:
                    parts[-1] += b".{%d}" % low
                parts.append(b"")
                literals.append([b""])
            else:
                parts[-1] += b".{%d,%d}?" % (low, high) if low != high else b".{%d}" % low
        else:
            alternatives = match.group("alts").split("|")
            if any(not a for a in alternatives):
                raise SignatureError("empty alternative")
            fragments = [_hex_fragment(a) for a in alternatives]
            if match.group("neg"):
                lengths = {len(a) for a in alternatives}
                if len(lengths) != 1:
                    raise SignatureError("negated alternatives must have one length")
                width = lengths.pop() // 2
                parts[-1] += b"(?!" + b"|".join(fragments) + b")" + b"." * width
            else:
                parts[-1] += b"(?:" + b"|".join(fragments) + b")"
    if any(p == b"" for p in parts):
        raise SignatureError("a signature may not start or end with * or be empty")
    compiled = parts            # regex sources; BodySignature compiles them on first use
    best, best_part = b"", 0
    for index, runs in enumerate(literals):
        for run in runs:
            candidate = _best_window(run)
            if len(candidate) > len(best) or (len(candidate) == len(best)
                                              and _rarity(candidate) > _rarity(best)):
                best, best_part = candidate, index
    return compiled, best, best_part


def _rarity(data: bytes) -> int:
    return len(set(data)) - 2 * data.count(0) - data.count(0xFF) - data.count(0x20)


def _best_window(run: bytes) -> bytes:
    if len(run) <= MAX_ANCHOR_OCTETS:
        return run
    best = run[:MAX_ANCHOR_OCTETS]
    for i in range(4, len(run) - MAX_ANCHOR_OCTETS + 1, 4):
        window = run[i:i + MAX_ANCHOR_OCTETS]
        if _rarity(window) > _rarity(best):
            best = window
    return best


# --- lines ---------------------------------------------------------------------------------

_OFFSET = re.compile(r"^(?:(?P<any>\*)|(?P<abs>\d+)|EOF-(?P<eof>\d+)|EP(?P<ep>[+-]\d+)"
                     r"|S(?P<sec>\d+)\+(?P<secoff>\d+)|SL\+(?P<last>\d+)|SE(?P<within>\d+))"
                     r"(?:,(?P<shift>\d+))?$")


def parse_offset(text: str) -> Offset:
    match = _OFFSET.match(text)
    if not match:
        raise SignatureError(f"unsupported offset {text!r}")
    shift = int(match.group("shift") or 0)
    if match.group("any"):
        if shift:
            raise SignatureError("`*` takes no shift")
        return Offset()
    if match.group("abs") is not None:
        return Offset("abs", int(match.group("abs")), shift)
    if match.group("eof") is not None:
        return Offset("eof", int(match.group("eof")), shift)
    if match.group("ep") is not None:
        return Offset("ep", int(match.group("ep")), shift)
    if match.group("sec") is not None:
        return Offset("section", int(match.group("secoff")), shift, int(match.group("sec")))
    if match.group("last") is not None:
        return Offset("last_section", int(match.group("last")), shift)
    return Offset("in_section", 0, 0, int(match.group("within")))


def parse_ndb_line(line: str, source: str = "") -> BodySignature | None:
    """A BodySignature, None for a signature this engine does not read (skipped), or
    SignatureError for a malformed line."""
    fields = line.split(":")
    if len(fields) < 4:
        raise SignatureError("expected Name:TargetType:Offset:HexSignature")
    name, target, offset, hexsig = fields[0], fields[1], fields[2], fields[3]
    if not name:
        raise SignatureError("empty name")
    if len(fields) >= 5 and fields[4].isdigit() and int(fields[4]) > FLEVEL:
        return None
    if not target.isdigit():
        raise SignatureError(f"bad target type {target!r}")
    if int(target) not in TARGET_TYPES:
        return None
    if re.search(r"\((?:B|L|W)\)", hexsig):
        return None
    parts, anchor, anchor_part = compile_hex(hexsig)
    return BodySignature(name, int(target), parse_offset(offset), parts, anchor, anchor_part,
                         source)


def parse_hash_line(line: str, kind_hint: str) -> HashSignature:
    fields = line.split(":")
    if len(fields) < 3:
        raise SignatureError("expected Hash:Size:Name")
    digest, size, name = fields[0].lower(), fields[1], fields[2]
    kinds = {32: "md5", 40: "sha1", 64: "sha256"}
    kind = kinds.get(len(digest))
    if kind is None or not re.fullmatch(r"[0-9a-f]+", digest):
        raise SignatureError("bad hash")
    if kind_hint == "hdb" and kind != "md5":
        raise SignatureError(".hdb holds MD5 hashes")
    if size == "*":
        return HashSignature(name, kind, digest, None)
    if not size.isdigit():
        raise SignatureError(f"bad size {size!r}")
    return HashSignature(name, kind, digest, int(size))


def load_files(paths) -> SignatureSet:
    """Every .ndb/.hdb/.hsb file of `paths` into one SignatureSet (other files ignored)."""
    out = SignatureSet()
    for path in sorted(Path(p) for p in paths):
        suffix = path.suffix.lower().lstrip(".")
        if suffix not in ("ndb", "hdb", "hsb"):
            continue
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                where = f"{path.name}:{number}"
                try:
                    if suffix == "ndb":
                        sig = parse_ndb_line(line, where)
                        if sig is None:
                            out.skipped += 1
                        else:
                            out.body.append(sig)
                    else:
                        out.hashes.append(parse_hash_line(line, suffix))
                except SignatureError as exc:
                    out.skipped += 1
                    if len(out.errors) < 100:
                        out.errors.append(f"{where}: {exc}")
    return out
