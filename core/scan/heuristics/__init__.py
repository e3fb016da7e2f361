"""Heuristic detections (SPEC §3 av.heuristics off|low|medium|high; docs/antivirus.md
"Heuristics").

Each detection has a stable name, the lowest level at which it fires, and a reason an
administrator reads. What fires at each level (the tests pin every row):

    level    detections
    low      Heuristic.Disguised.DoubleExtension, .RightToLeftOverride, .ExecutableContent
    medium   low + Heuristic.Macro.AutoExecShell (auto-exec VBA with shell/download/
             obfuscation traits, or Excel 4 macros run by Auto_Open that call EXEC,
             REGISTER, ...), Heuristic.PDF.JavaScriptLaunch (JavaScript plus a
             launch/open action), Heuristic.HTML.Smuggling (script that assembles a file
             and downloads it)
    high     medium + Heuristic.Macro.Present (any VBA or Excel 4 macro),
             Heuristic.PDF.JavaScript (any PDF JavaScript), Heuristic.Archive.Executable
             (executables and scripts inside archives: common in legitimate mail, so only
             at the most suspicious level)

`detect(view, parts, level)` returns [(part, Heuristic)], one detection per part at most
(the strongest: the one with the lowest level). Pure functions of the parts' bytes and
names; nothing here raises for anything in a message (an unreadable document is simply
not judged).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Heuristic", "LEVELS", "detect"]

LEVELS = ("off", "low", "medium", "high")


@dataclass(frozen=True)
class Heuristic:
    name: str
    level: str          # the lowest av.heuristics level at which it fires
    reason: str
    repairable: bool = False      # macros in an OOXML document: repair removes them


def _rank(level: str) -> int:
    return LEVELS.index(level)


def detect(view, parts, level: str) -> list:
    if level == "off":
        return []
    from core.scan.heuristics import disguise, html, office, pdf
    wanted = _rank(level)
    out = []
    for part in parts:
        if not part.data or part.is_multipart:
            continue
        found = []
        for module in (disguise, office, pdf, html):
            try:
                found.extend(module.check(view, part))
            except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
                raise
            except Exception:            # module rule: never raise for message content
                continue
        found = [h for h in found if _rank(h.level) <= wanted]
        if found:
            out.append((part, min(found, key=lambda h: _rank(h.level))))
    return out
