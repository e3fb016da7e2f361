"""Executables disguised by name (level low) and executables/scripts inside archives
(level high). Every name the part declares is judged (`Part.names`): readers differ in which
they show and save under (core/pipeline/decompose/content_fields.py rule 2), so "invoice.pdf"
in one field does not hide "invoice.pdf.exe" in another."""

from __future__ import annotations

from core.scan.heuristics import Heuristic

EXECUTABLE_EXTENSIONS = {".exe", ".scr", ".com", ".pif", ".cpl", ".msi", ".bat", ".cmd",
                         ".vbs", ".vbe", ".js", ".jse", ".wsf", ".wsh", ".hta", ".ps1",
                         ".lnk", ".jar", ".dll", ".reg", ".iso"}
SCRIPT_EXTENSIONS = {".bat", ".cmd", ".vbs", ".vbe", ".js", ".jse", ".wsf", ".wsh", ".hta",
                     ".ps1"}
DOCUMENT_EXTENSIONS = {".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".txt",
                       ".rtf", ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".mp3", ".mp4",
                       ".avi", ".htm", ".html", ".odt", ".csv", ".zip", ".wav", ".tif"}
EXECUTABLE_TYPES = {"exe", "elf", "macho"}
RLO = "\u202e"


def _base(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def _extensions(base: str) -> list[str]:
    pieces = base.lower().split(".")
    return ["." + p.strip() for p in pieces[1:]]


def check(view, part) -> list[Heuristic]:
    out = []
    bases = list(dict.fromkeys(_base(name) for name in part.names)) or [""]
    for base in bases:
        out += _disguised(part, base)
    if part.origin == "archive":
        endings = [exts[-1] for exts in map(_extensions, bases) if exts]
        if part.true_type in EXECUTABLE_TYPES or any(e in EXECUTABLE_EXTENSIONS for e in endings):
            kind = "script" if any(e in SCRIPT_EXTENSIONS for e in endings) else "executable"
            out.append(Heuristic("Heuristic.Archive.Executable", "high",
                                 f"archive member {part.location!r} is an {kind}"))
    return out


def _disguised(part, base: str) -> list[Heuristic]:
    out = []
    if RLO in base or "\u202d" in base:
        out.append(Heuristic("Heuristic.Disguised.RightToLeftOverride", "low",
                             f"file name {base!r} contains a right-to-left override character "
                             "that hides its real extension"))
    exts = _extensions(base)
    if len(exts) >= 2 and exts[-1] in EXECUTABLE_EXTENSIONS and exts[-2] in DOCUMENT_EXTENSIONS:
        out.append(Heuristic("Heuristic.Disguised.DoubleExtension", "low",
                             f"file name {base!r} shows a {exts[-2]} extension but ends in "
                             f"{exts[-1]}"))
    elif exts and exts[-1] in EXECUTABLE_EXTENSIONS and "      " in base:
        out.append(Heuristic("Heuristic.Disguised.DoubleExtension", "low",
                             f"file name {base!r} pads its real extension out of sight"))
    if part.true_type in EXECUTABLE_TYPES and exts and exts[-1] in DOCUMENT_EXTENSIONS:
        out.append(Heuristic("Heuristic.Disguised.ExecutableContent", "low",
                             f"{base!r} is named like a {exts[-1]} file but its content is a "
                             f"{part.true_type} executable"))
    return out
