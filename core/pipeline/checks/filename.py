"""File names (SPEC §3 filename.*; guide §6 "Blocking by file name", Table 6-2).

Patterns are matched (whole name, `*`/`?`, case-insensitive) against the name of every
file at every level — attachments, attached messages' attachments, archive and TNEF
members — and against the name with the extension of the content's true type, so an
executable named `invoice.pdf` matches `*.exe`. A name ending in dots or spaces is matched
as Windows saves it too, without them: `evil.js.` lands as `evil.js` (policy finding A2).
Names and patterns are compared in canonical composition (NFC) and without accents and the
other marks shared.wildcard.without_marks drops, as rule terms are (`ΑΠΟΡΡΗΤΟ*` matches
"απόρρητο_1.doc": tester i18n19 B1); the event names the file as it is named. A match removes the attachment that carries
the file (for an archive member: the archive, the outermost attachment holding it) and,
with filename.deleted_text.enabled, puts filename.deleted_text in its place; the message is
delivered. One finding (and event) per matching file.
"""

from __future__ import annotations

import unicodedata

from core.pipeline.findings import Finding
from shared.wildcard import matches, without_marks

# true types that name an extension a pattern can mean (magic bytes -> extension)
TRUE_TYPE_EXTENSIONS = {"exe": "exe", "lnk": "lnk", "chm": "chm", "msi": "msi", "hlp": "hlp",
                        "class": "class"}


def candidate_names(part) -> list[str]:
    # Canonical composition (NFC): macOS Mail sends names decomposed (a + U+0308 for ä), so
    # a pattern typed "Rechnung_März*" missed the same name from a Mac (i18n finding 4).
    names = list(dict.fromkeys(unicodedata.normalize("NFC", name) for name in part.names))
    names += [saved for name in names
              if (saved := name.rstrip(". ")) and saved != name and saved not in names]
    true_ext = TRUE_TYPE_EXTENSIONS.get(part.true_type or "")
    if true_ext:
        base = (names[-1] if names else "attachment")
        stem = base.rsplit(".", 1)[0] if "." in base else base
        names.append(f"{stem}.{true_ext}")
    return names


def matching_pattern(patterns, part) -> tuple[str, str] | None:
    """(pattern, name) of the first pattern matching one of the part's names."""
    names = [(name, without_marks(name)) for name in candidate_names(part)]
    for pattern in patterns:
        pattern = unicodedata.normalize("NFC", pattern.strip())
        if not pattern:
            continue
        compared = without_marks(pattern)
        for name, name_compared in names:
            if matches(compared, name_compared):
                return pattern, name
    return None


def check(view, settings) -> list[Finding]:
    if not settings["filename.enabled"]:
        return []
    patterns = settings["filename.patterns"]
    text = settings["filename.deleted_text"] if settings["filename.deleted_text.enabled"] else None
    out = []
    for part in view.files():
        hit = matching_pattern(patterns, part)
        if hit is None:
            continue
        pattern, name = hit
        shown = part.filename or name
        carrier = part.carrier if part.carrier is not None else part.id
        out.append(Finding(
            rule="filename.patterns", action="remove_part", event="attachment_deleted",
            part=carrier, text=text, notify="content",
            reason=f"attachment {part.location} matches blocked file name {pattern!r}",
            data={"file": shown, "pattern": pattern, "matched_name": name,
                  "true_type": part.true_type, "location": part.location}))
    return out
