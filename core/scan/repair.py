"""Repair (guide §4 "repair"): the one repair that is real — removing the VBA project from
an OOXML document (.docm/.xlsm/.pptm and their templates) so that it stays a valid document
without macros. Everything else is unrepairable (the caller then applies
av.on_unrepairable).

What goes
    - every `vbaProject.bin`, `vbaProjectSignature*.bin`, `vbaData.xml` part and the
      `_rels/<part>.rels` of removed parts;
    - every relationship (in any .rels) whose target is a removed part;
    - `[Content_Types].xml` Override entries for removed parts, and the Default for the
      `bin` extension when no remaining part uses it.
The main part keeps its macro-enabled content type: a .docm without a VBA project is what
Office itself writes when the macros are deleted, and the file name still matches.

What is not repaired
    A workbook that also holds Excel 4 (XLM) macro sheets (`macro_sheets`): its macros are
    cells of a sheet the workbook lists, named by its defined names (Auto_Open), not a part
    that can go on its own, so removing the VBA project would return a "repaired" workbook
    that still runs macros (content18 B4). It is unrepairable, as a workbook with macro
    sheets and no VBA project is.

`remove_vba(data)` returns the repaired bytes, or raises NotRepairable. `check_package`
parses a package and lists dangling relationships (the tests use it; repair runs it on its
own output and refuses to return a package that fails it). `macro_sheets(data)` names the
Excel 4 macro sheets of a package (core/scan/heuristics/office.py reports them too).
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
import zlib
from xml.etree import ElementTree

__all__ = ["remove_vba", "NotRepairable", "check_package", "has_vba_project", "macro_sheets"]

REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
_VBA_PART = re.compile(r"(^|/)(vbaProject\.bin|vbaProjectSignature[A-Za-z]*\.bin|vbaData\.xml)$",
                       re.IGNORECASE)
MAX_OCTETS = 64 * 2**20
# Excel 4 macro sheets of OOXML (.xlsm/.xltm: xl/macrosheets/*.xml) and XLSB (*.bin)
# workbooks: found by the relationship that lists them, their content type
# (application/vnd.ms-excel.macrosheet+xml, ...intlmacrosheet...) or their folder
_MACROSHEET_RELATIONSHIP = re.compile(r"/xl(?:Intl)?Macrosheet$", re.IGNORECASE)
_MACROSHEET_FOLDER = re.compile(r"(^|/)macrosheets/(?!binaryIndex)[^/]+$", re.IGNORECASE)
MAX_PACKAGE_XML_OCTETS = 4 * 2**20      # a [Content_Types].xml or .rels read for them
MAX_RELS_READ = 1000


class NotRepairable(Exception):
    """The content cannot be repaired; the message says why."""


def has_vba_project(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return any(_VBA_PART.search(n) for n in z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def macro_sheets(data: bytes) -> list[str]:
    """The Excel 4 (XLM) macro sheets of an OOXML or XLSB package, sorted: the parts a
    relationship of type xlMacrosheet / xlIntlMacrosheet points at, the parts whose content
    type is a macro sheet's (Override, or Default for their extension), and the parts of a
    `macrosheets/` folder. [] when there are none or `data` is no readable package; never
    raises for content."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = {i.filename: i for i in z.infolist()}

            def xml(name: str):
                info = infos.get(name)
                if info is None or info.file_size > MAX_PACKAGE_XML_OCTETS:
                    return ()
                try:
                    return ElementTree.fromstring(z.read(info))
                except (ElementTree.ParseError, zipfile.BadZipFile, OSError, ValueError,
                        RuntimeError, NotImplementedError, EOFError, zlib.error):
                    return ()

            found = {n for n in infos if _MACROSHEET_FOLDER.search(n)}
            for entry in xml("[Content_Types].xml"):
                if "macrosheet" not in entry.get("ContentType", "").lower():
                    continue
                tag = entry.tag.rsplit("}", 1)[-1]
                if tag == "Override":
                    found.add(entry.get("PartName", "").lstrip("/"))
                elif tag == "Default":
                    ending = "." + entry.get("Extension", "").lower()
                    found |= {n for n in infos if n.lower().endswith(ending)}
            for name in [n for n in infos if n.endswith(".rels")][:MAX_RELS_READ]:
                for rel in xml(name):
                    if rel.get("TargetMode") != "External" and \
                            _MACROSHEET_RELATIONSHIP.search(rel.get("Type", "")):
                        found.add(_resolve(name, rel.get("Target", "")))
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError,
            EOFError, zlib.error):
        return []
    return sorted(n for n in found if n)


def _rels_source(rels_name: str) -> str:
    """'word/_rels/document.xml.rels' -> 'word/document.xml'; '_rels/.rels' -> ''."""
    folder, base = posixpath.split(rels_name)
    owner_dir = posixpath.dirname(folder)
    return posixpath.join(owner_dir, base[:-len(".rels")]) if base != ".rels" else ""


def _resolve(rels_name: str, target: str) -> str:
    if target.startswith("/"):
        return target.lstrip("/")
    source = _rels_source(rels_name)
    base = posixpath.dirname(source)
    return posixpath.normpath(posixpath.join(base, target))


def remove_vba(data: bytes) -> bytes:
    if len(data) > MAX_OCTETS:
        raise NotRepairable("document too large to repair")
    try:
        source = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise NotRepairable(f"not a readable OOXML package ({exc})") from None
    with source:
        names = source.namelist()
        if "[Content_Types].xml" not in names:
            raise NotRepairable("not an OOXML package")
        removed = {n for n in names if _VBA_PART.search(n)}
        if not removed:
            raise NotRepairable("no VBA project to remove")
        sheets = macro_sheets(data)
        if sheets:
            raise NotRepairable(f"it also has Excel 4 macro sheets ({', '.join(sheets[:3])}), "
                                "which repair does not remove")
        removed |= {posixpath.join(posixpath.dirname(n), "_rels", posixpath.basename(n) +
                                   ".rels") for n in list(removed)} & set(names)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
            for info in source.infolist():
                name = info.filename
                if name in removed:
                    continue
                content = source.read(info)
                if name.endswith(".rels"):
                    content = _strip_relationships(name, content, removed)
                elif name == "[Content_Types].xml":
                    content = _strip_content_types(content, removed,
                                                   [n for n in names if n not in removed])
                copy = zipfile.ZipInfo(name, date_time=info.date_time)
                copy.compress_type = zipfile.ZIP_DEFLATED
                copy.external_attr = info.external_attr
                target.writestr(copy, content)
    repaired = out.getvalue()
    problems = check_package(repaired)
    if problems:
        raise NotRepairable("repair would leave " + problems[0])
    return repaired


def _strip_relationships(rels_name: str, content: bytes, removed: set[str]) -> bytes:
    ElementTree.register_namespace("", REL_NS)
    root = ElementTree.fromstring(content)
    changed = False
    for rel in list(root):
        if rel.get("TargetMode") == "External":
            continue
        if _resolve(rels_name, rel.get("Target", "")) in removed:
            root.remove(rel)
            changed = True
    if not changed:
        return content
    return ElementTree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _strip_content_types(content: bytes, removed: set[str], remaining: list[str]) -> bytes:
    ElementTree.register_namespace("", CT_NS)
    root = ElementTree.fromstring(content)
    used_extensions = {posixpath.splitext(n)[1].lstrip(".").lower() for n in remaining}
    for entry in list(root):
        tag = entry.tag.rsplit("}", 1)[-1]
        if tag == "Override" and entry.get("PartName", "").lstrip("/") in removed:
            root.remove(entry)
        elif tag == "Default" and entry.get("Extension", "").lower() not in used_extensions \
                and "vbaProject" in entry.get("ContentType", ""):
            root.remove(entry)
    return ElementTree.tostring(root, xml_declaration=True, encoding="UTF-8")


def check_package(data: bytes) -> list[str]:
    """Problems of an OOXML package: unreadable parts, relationships pointing at missing
    parts, content-type overrides of missing parts, leftover VBA parts."""
    problems = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = set(z.namelist())
            if z.testzip() is not None:
                problems.append("a damaged zip member")
            if "[Content_Types].xml" not in names:
                problems.append("no [Content_Types].xml")
                return problems
            for name in sorted(names):
                if _VBA_PART.search(name):
                    problems.append(f"VBA part {name}")
                if name.endswith(".rels"):
                    root = ElementTree.fromstring(z.read(name))
                    for rel in root:
                        if rel.get("TargetMode") == "External":
                            continue
                        target = _resolve(name, rel.get("Target", ""))
                        if target not in names:
                            problems.append(f"dangling relationship {name} -> {target}")
            types = ElementTree.fromstring(z.read("[Content_Types].xml"))
            for entry in types:
                if entry.tag.endswith("Override"):
                    part = entry.get("PartName", "").lstrip("/")
                    if part not in names:
                        problems.append(f"content type for missing part {part}")
    except (zipfile.BadZipFile, ElementTree.ParseError, OSError, ValueError, KeyError) as exc:
        problems.append(f"unreadable package ({type(exc).__name__})")
    return problems


class RepairedContent(bytes):
    """Repaired bytes carried in a replace_part finding's data["content"] (findings.py).
    Event data is JSON-encoded with `default=str`; this keeps the document itself out of
    the event log (str() is a short description, not the bytes)."""

    def __str__(self) -> str:
        return f"<repaired content, {len(self)} bytes>"

    __repr__ = __str__

    def __reduce__(self):                     # pickles as itself across the worker boundary
        return (RepairedContent, (bytes(self),))
