"""Which parts the scanners look at (SPEC §3 scan.mode/include/exclude; guide §3
"Configuring scan options" — its examples are acceptance tests in
tests/unit/pipeline/test_scan_policy.py).

    all      every part that is not a multipart: body text, attachments, archive members,
             and the archives themselves
    include  only files whose extension is in scan.include (declared name, or the
             extension of the content's true type)
    exclude  every part except files whose extension is in scan.exclude (and whose true
             type does not say otherwise)

Containers are always decomposed; in include/exclude mode a container that was expanded is
not itself a candidate — its members are ("If only .zip is in the Include list and test.zip
is sent, no files are scanned because the zip file has been decomposed"). A container that
could not be opened (rar without a reader, an encrypted one) stays a file like any other.
"""

from __future__ import annotations

from core.pipeline.view import MessageView, Part

__all__ = ["selected", "part_extensions"]


def part_extensions(part: Part) -> set[str]:
    exts = set()
    if part.extension:
        exts.add(part.extension)
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
    out = []
    for part in candidates:
        declared = part.extension
        true = "." + part.true_type if part.true_type else None
        excluded = declared in exclude and (true is None or true in exclude
                                            or true == declared)
        if not excluded:
            out.append(part)
    return out
