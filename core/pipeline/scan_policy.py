"""Which parts the scanners look at (SPEC §3 scan.mode/include/exclude; guide §3
"Configuring scan options" — its examples are acceptance tests in
tests/unit/pipeline/test_scan_policy.py).

    all      every part that is not a multipart: body text, attachments, archive members,
             and the archives themselves
    include  only files with an extension in scan.include: of any name the part declares
             (`Part.extensions`), or of the content's true type
    exclude  every part except files whose every declared name has an extension in
             scan.exclude (and whose true type does not say otherwise)

A part may declare several names, and readers differ in which they take (content_fields.py
rule 2): `filename="a.txt"; filename="a.exe"` is scanned under include .exe, and not left
out under exclude .txt (guide36 finding 7).

Containers are always decomposed; in include/exclude mode a container that was expanded is
not itself a candidate — its members are ("If only .zip is in the Include list and test.zip
is sent, no files are scanned because the zip file has been decomposed"). A container that
could not be opened (rar without a reader, an encrypted one) stays a file like any other, and
so does an OLE2 document whose packaged files are members (a .doc is more than its packages:
decompose/engine_archives.py rule 5).
"""

from __future__ import annotations

from core.pipeline.view import MessageView, Part

__all__ = ["selected", "part_extensions"]


def part_extensions(part: Part) -> set[str]:
    """The extensions a scan list is compared with: of every declared name, and the true
    type's."""
    exts = {e for e in part.extensions if e}
    if part.true_type:
        exts.add("." + part.true_type)
    return exts


def selected(view: MessageView, settings) -> list[Part]:
    mode = settings["scan.mode"]
    leaves = [p for p in view.parts if not p.is_multipart]
    if mode == "all":
        return leaves
    candidates = [p for p in leaves if not (p.container and p.expanded)]
    if mode == "include":
        include = {e.lower() for e in settings["scan.include"]}
        return [p for p in candidates if part_extensions(p) & include]
    exclude = {e.lower() for e in settings["scan.exclude"]}
    return [p for p in candidates if not _excluded(p, exclude)]


def _excluded(part: Part, exclude: set[str]) -> bool:
    declared = part.extensions
    if not declared or not all(e in exclude for e in declared):
        return False
    true = "." + part.true_type if part.true_type else None
    return true is None or true in exclude or true in declared
