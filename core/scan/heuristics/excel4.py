"""Excel 4 (XLM) macros that run by themselves and do what droppers do (fixer19 F7): the
Excel 4 counterpart of auto-exec VBA with shell/download traits, for
core/scan/heuristics/office.py ("Heuristic.Macro.AutoExecShell" at `medium`).

Rules
    1. Runs automatically: a defined name (OOXML `definedName`, BIFF LABEL/NAME record, SYLK
       `NN` record) starting with Auto_Open, Auto_Close, Auto_Activate or Auto_Deactivate,
       case-insensitive, with or without the built-in prefix `_xlnm.`: Excel runs every
       name that starts so ("Auto_Open", "auto_open21", "_xlnm.Auto_Open"), and the
       Emotet/Qakbot/ZLoader XLM droppers of 2020-22 named their entry cells that way
       (XLMMacroDeobfuscator's entry points are the same four prefixes).
    2. Traits, in a macro sheet's formulas (a call `NAME(`, strings included: the formula
       a FORMULA() writes is a string first; a word without its "(" is no call):
       EXEC (runs a program), CALL / REGISTER / REGISTER.ID (call a DLL function),
       URLDownloadToFile anywhere (the urlmon download REGISTER names), FOPEN together with
       FWRITE or FWRITELN (writes a file), FORMULA / FORMULA.FILL / FORMULA.ARRAY /
       SET.VALUE writing a formula it builds (its text joined with `&` or CHAR(), beginning
       with a cell or a function, not a string — or a string in it starts with `=` or holds
       a call: the macro's next formulas written at run time, how those droppers hid EXEC), and CHAR() with MIN_CHAR_CODES different codes or more
       (strings built a character at a time; codes of printable characters only, not space
       or the quote). `medium` is the default level, so what ordinary workbooks do stays
       out: FORMULA writing a fixed formula or a label ("Total: "&R1C1), CHAR(9), CHAR(10)
       and CHAR(13) in an ALERT (review19 D2, r4 R3). ALERT, HALT, RUN,
       GOTO and the like are not traits: the oletools samples (Auto_Open + ALERT) stay
       "macro present", at `high`.
    3. Where the formulas and names come from: OOXML (.xlsm/.xltm) macro sheets (the `f`
       elements of the parts core/scan/repair.py `macro_sheets` names) and the workbook
       part's `definedName`s, read here; BIFF (.xls/.xlt) and SYLK from olevba's XLM
       listing (its BIFF plugin's LABEL records and formula rows; its SLK reader's
       "Named cell" and "Formula or Macro" lines). XLSB macro sheets hold parsed formula
       tokens, not text: they are not read (macro present at `high` only).
    4. Bounded: at most MAX_SHEETS macro sheets and MAX_XML_READ decompressed octets of
       XML in all (a 50 MB macro sheet is judged on its first MAX_XML_READ octets), each
       formula kept to MAX_FORMULA_CHARS. Unreadable or malformed XML ends the reading of
       that part; what was read is judged. Never raises for content.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
import zlib
from dataclasses import dataclass
from xml.etree import ElementTree
from xml.parsers import expat

__all__ = ["Excel4", "from_package", "from_olevba", "automatic", "traits"]

AUTO_PREFIXES = ("auto_open", "auto_close", "auto_activate", "auto_deactivate")
MIN_CHAR_CODES = 3
MAX_SHEETS = 32
MAX_XML_READ = 16 * 2**20
MAX_FORMULA_CHARS = 8192 * 4        # Excel's limit for a formula is 8,192 characters
MAX_RELS_OCTETS = 2**20
CHUNK = 64 * 1024

_CALL = re.compile(r"(?<![\w.])(?:_xlfn\.)?(EXEC|CALL|REGISTER(?:\.ID)?|FOPEN|FWRITE(?:LN)?|"
                   r"FORMULA(?:\.FILL|\.ARRAY)?|SET\.VALUE|CHAR)\s*\(", re.IGNORECASE)
_WRITES_FORMULA = {"FORMULA", "FORMULA.FILL", "FORMULA.ARRAY", "SET.VALUE"}
_CHAR_CODE = re.compile(r"\s*(\d+)\s*\)")
_CALL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9.]*\(")
# CHAR() codes that spell something (rule 2): printable, not space or the quote; tabs, line
# breaks and quotes are what ordinary messages build with CHAR()
_SPELLING_CODES = frozenset(str(code) for code in range(33, 127) if code != 34)
_STRING = re.compile(r'"((?:[^"]|"")*)"')
_DOWNLOAD = re.compile(r"URLDownloadToFile", re.IGNORECASE)
_TRAIT_OF = {"EXEC": "EXEC", "CALL": "CALL", "REGISTER": "REGISTER", "REGISTER.ID": "REGISTER",
             "FORMULA": "FORMULA", "FORMULA.FILL": "FORMULA.FILL",
             "FORMULA.ARRAY": "FORMULA.ARRAY", "SET.VALUE": "SET.VALUE"}
# olevba's BIFF plugin: "0018     23 LABEL : Cell Value, String Constant - built-in-name 1
# Auto_Open len=7 ptgRef3d Macro!A1" (a user name: "... String Constant - Auto_Open1 len=...")
_LABEL = re.compile(r"LABEL : [^-]*- (?:built-in-name \d+ )?(?P<name>\S+)(?P<rest>.*)",
                    re.DOTALL)
_RECORD = re.compile(r"[0-9a-fA-F]{4} +\d+ ")
_CONTROL = re.compile(r"[\x00-\x1f]")
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError,
               EOFError, zlib.error)


@dataclass(frozen=True)
class Excel4:
    automatic: tuple[str, ...]      # the names Excel runs by itself (rule 1)
    traits: tuple[str, ...]         # rule 2, sorted


def automatic(names) -> tuple[str, ...]:
    """The names of `names` Excel runs by itself (rule 1), in order, once each."""
    out: list[str] = []
    for raw in names:
        name = _CONTROL.sub("", raw).strip()
        bare = name[len("_xlnm."):] if name.lower().startswith("_xlnm.") else name
        if bare.lower().startswith(AUTO_PREFIXES) and bare not in out:
            out.append(bare)
    return tuple(out)


def traits(formulas) -> tuple[str, ...]:
    """Rule 2's traits of an iterable of formula texts, sorted."""
    found = _Traits()
    for formula in formulas:
        found.add(formula)
    return found.result()


class _Traits:
    """Rule 2, a formula at a time (a macro sheet's formulas are not kept)."""

    def __init__(self):
        self.found: set[str] = set()
        self.calls: set[str] = set()
        self.char_codes: set[str] = set()

    def add(self, formula: str) -> None:
        formula = formula[:MAX_FORMULA_CHARS]
        if _DOWNLOAD.search(formula):
            self.found.add("URLDownloadToFile")
        for match in _CALL.finditer(formula):
            call = match.group(1).upper()
            if call == "CHAR":
                code = _CHAR_CODE.match(formula, match.end())
                if code is None or code[1].lstrip("0") in _SPELLING_CODES:
                    self.char_codes.add(code[1].lstrip("0") if code
                                        else formula[match.end():match.end() + 8])
            elif call not in _WRITES_FORMULA or _builds_a_formula(formula[match.end():]):
                self.calls.add(call)

    def result(self) -> tuple[str, ...]:
        found = self.found | {_TRAIT_OF[c] for c in self.calls if c in _TRAIT_OF}
        if "FOPEN" in self.calls and self.calls & {"FWRITE", "FWRITELN"}:
            found.add("FOPEN/FWRITE")
        if len(self.char_codes) >= MIN_CHAR_CODES:
            found.add("CHAR() strings")
        return tuple(sorted(found))


def _builds_a_formula(arguments: str) -> bool:
    """Rule 2: what a FORMULA or SET.VALUE call writes (the rest of the formula from its "("
    on) is joined at run time and may be a formula: it does not begin with a string, as a
    label does ("Total: "&R1C1) — it begins with a cell or a function (R10C1&"EC(...)", the
    "=EX" kept in a cell) — or a string in it starts with "=" or holds a call, or it has
    CHAR(61), the "=" itself."""
    if "&" not in arguments and not re.search(r"CHAR\s*\(", arguments, re.IGNORECASE):
        return False
    strings = _STRING.findall(arguments)
    return (not arguments.lstrip().startswith('"')
            or any(text.lstrip().startswith("=") or _CALL_IN_TEXT.search(text)
                   for text in strings)
            or re.search(r"CHAR\s*\(\s*61\s*\)", arguments, re.IGNORECASE) is not None)


def from_olevba(lines) -> Excel4:
    """Rule 3 for BIFF and SYLK: olevba's XLM listing (VBA_Parser.xlm_macros)."""
    names: list[str] = []
    found = _Traits()
    for line in lines:
        line = str(line)
        if line.startswith("Named cell: "):                 # SYLK
            names.append(line[len("Named cell: "):])
        elif line.startswith("Formula or Macro: "):         # SYLK
            found.add(line[len("Formula or Macro: "):])
        elif _RECORD.match(line):
            if label := _LABEL.search(line):                # BIFF defined name
                names.append(label["name"])
                found.add(label["rest"])
        elif not line.startswith("Formulas and XLM"):
            found.add(line)                                 # BIFF: sheet,cell,formula,value
    return Excel4(automatic(names), found.result())


def from_package(data: bytes, sheets: list[str]) -> Excel4:
    """Rule 3 for an OOXML workbook whose macro sheets are `sheets` (repair.macro_sheets)."""
    names: list[str] = []
    found = _Traits()
    budget = [MAX_XML_READ]
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = {i.filename.lower(): i for i in z.infolist()}
            book = infos.get(_workbook_part(z, infos).lower())
            if book is not None:
                _read(z, book, budget, _NamesReader(names))
            for sheet in [s for s in sheets if not s.lower().endswith(".bin")][:MAX_SHEETS]:
                info = infos.get(sheet.lower())
                if info is not None and budget[0] > 0:
                    _read(z, info, budget, _FormulaReader(found))
    except _ZIP_ERRORS:
        pass
    return Excel4(automatic(names), found.result())


def _workbook_part(z: zipfile.ZipFile, infos: dict) -> str:
    """The package's main part (its officeDocument relationship), else xl/workbook.xml."""
    info = infos.get("_rels/.rels")
    if info is not None and info.file_size <= MAX_RELS_OCTETS:
        try:
            for rel in ElementTree.fromstring(z.read(info)):
                if rel.get("Type", "").endswith("/officeDocument") and \
                        rel.get("TargetMode") != "External":
                    return posixpath.normpath(rel.get("Target", "").lstrip("/"))
        except ElementTree.ParseError:
            pass
    return "xl/workbook.xml"


class _NamesReader:
    """The `name` attribute of every definedName element."""

    def __init__(self, names: list[str]):
        self.names = names

    def start(self, local: str, attributes: dict) -> None:
        if local == "definedName":
            self.names.append(attributes.get("name", ""))

    def text(self, data: str) -> None:
        pass

    def end(self, local: str) -> None:
        pass


class _FormulaReader:
    """The text of every `f` element (a cell's formula), each cut to MAX_FORMULA_CHARS,
    to `found`."""

    def __init__(self, found: _Traits):
        self.found = found
        self.pieces: list[str] | None = None
        self.size = 0

    def start(self, local: str, attributes: dict) -> None:
        if local == "f":
            self.pieces, self.size = [], 0

    def text(self, data: str) -> None:
        if self.pieces is not None and self.size < MAX_FORMULA_CHARS:
            self.pieces.append(data[:MAX_FORMULA_CHARS - self.size])
            self.size += len(self.pieces[-1])

    def end(self, local: str) -> None:
        if local == "f" and self.pieces is not None:
            self.found.add("".join(self.pieces))
            self.pieces = None


def _read(z: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int], reader) -> None:
    """Feed one XML part to `reader` (start/text/end by local name) with expat, reading at
    most budget[0] decompressed octets (taken off the budget); stops at malformed XML."""
    parser = expat.ParserCreate(namespace_separator="}")
    parser.StartElementHandler = lambda tag, attributes: reader.start(
        tag.rsplit("}", 1)[-1], attributes)
    parser.EndElementHandler = lambda tag: reader.end(tag.rsplit("}", 1)[-1])
    parser.CharacterDataHandler = reader.text
    try:
        with z.open(info) as stream:
            while budget[0] > 0:
                chunk = stream.read(min(CHUNK, budget[0]))
                if not chunk:
                    break
                budget[0] -= len(chunk)
                parser.Parse(chunk, False)
    except (expat.ExpatError, *_ZIP_ERRORS):
        pass
