"""Antivirus (SPEC §3 Antivirus, §5 step 4; guide §4): signature engines and heuristics on
the parts the scan policy selects, and the guide's actions on what they find.

For each infected file (engines in av.engine order — the first that flags a part reports
every detection it makes there, core/scan/builtin.py and clamd.py `scan_all` — then
heuristics at av.heuristics for parts no engine flagged):

    in the message body itself (not an attachment)    drop          event file_deleted
    detection name is a mass mailer (@m / @mm) and
      av.mass_mailer_cleanup                          drop          event mass_mailer_cleanup
    av.on_virus repair, and repairable                replace_part  event file_repaired
    av.on_virus delete, or repair but unrepairable
      with av.on_unrepairable delete                  remove_part   event file_deleted
                                                      (+ av.deleted_text when enabled)
    av.on_virus log, or unrepairable with
      av.on_unrepairable log                          log           event virus_logged
      ... and then av.on_not_removed drop             drop (no event of its own: the
                                                      DROPPED disposition names the rule)

Repairable means: macros in an OOXML document that is itself a MIME attachment — found by
the macro heuristics, or by a signature inside its vbaProject.bin — and core/scan/repair.py
can remove the VBA project. An archive member goes with the attachment carrying it, but is
reported on its own: every infected member of an archive, and every infected item an engine
unpacks itself, is a finding (and event) with its own name and detection, as the guide has
each of test.zip's .exe and .doc "scanned and repaired or deleted" (guide §3; guide36
finding 5: only the first was reported, so "Log only" let the others through unlogged).
Two detections of one file make one finding (`_one_per_file`).
A uuencoded block in a message text is a part of its own (decompose/uuencoded.py): the text
is scanned without its lines when each of them, to its "end" line, decoded into the block,
which is scanned as a file and removed as an attachment is (content18 B5); a block that did
not decode whole stays in the text scanned too, so no octet of the text goes unscanned
(review18 R1: a "begin" line hid all that followed it).
Encrypted containers are left to the encrypted-container check. A scanner that cannot
answer is a scan_error finding asking for scan.unprocessable. When clamd refuses one part
(longer than its StreamMaxLength, or any ERROR it answers that stream with: clamd.py
StreamRefused) the finding names that part, and clamd is still asked about the others;
when clamd itself fails (unreachable, timed out, a reply that is not its answer, or out of
the time the message may spend on scanning: core/pipeline/run.py rule 3) one finding says
so, and clamd is not asked about the message's other parts (clampartsfix18: one over-long
part's refusal left the others unscanned by clamd, and scan.unprocessable deliver let
them through).
Every finding feeds ${VIRUSINFO} (notify="virus") and carries data["virus"], ["file"],
["repaired"] and ["removed"] for the reports and core/scan/service.py (virus quarantine,
outbreak counting, Status counters); a mass mailer's also ["mmc_entry"], the entry of the
mass mailer cleanup list its name matched.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple

from core.pipeline import scan_policy
from core.pipeline.findings import Finding
from shared.shown_text import one_line

# The mass mailer cleanup list (guide §4 "Enabling mass mailer cleanup": the "@m" that
# Symantec Security Response gives mass-mailer names, and "@mm"), as one pattern.
MASS_MAILER = re.compile(r"@mm?\b|@mm?$", re.IGNORECASE)
VBA_MEMBER = re.compile(r"(^|/)vbaProject\.bin$", re.IGNORECASE)
_ITEM_NUMBER = re.compile(r"\[\d+\]|\(crc mismatch\)")      # core/scan/unpack.py labels


def mass_mailer_entry(name: str) -> str | None:
    """The entry of the mass mailer cleanup list that detection `name` matches ("@m",
    "@mm"), or None: the mass_mailer_cleanup event names it (guide Table 7-9 "matching
    entry in MMC list")."""
    found = MASS_MAILER.search(name)
    return found.group(0).lower() if found else None


def _scannable(part, troubled: set[int]) -> bool:
    """Leaves with content; an expanded container only when one of its members could not
    be read (the engines then look into the container themselves: Deflate64 zips, ...)."""
    if part.is_multipart or not part.data or part.encrypted:
        return False
    return not (part.container and part.expanded) or part.id in troubled


def check(view, settings) -> list[Finding]:
    if not settings["av.enabled"]:
        return []
    from core.scan.clamd import ScanError, StreamRefused
    from core.scan.engines import engines_for
    from core.scan.heuristics import detect

    troubled = {view.parts[e.part].parent for e in view.errors
                if e.part is not None and e.part < len(view.parts)}
    parts = [p for p in scan_policy.selected(view, settings) if _scannable(p, troubled)]
    engines = engines_for(settings)
    decompose = _decomposer(settings)
    infected: list[_Infection] = []
    errors: list[tuple[str, str, int | None]] = []     # (engine, reason, part or None)
    broken: set[str] = set()
    written_in = _written_in(view)
    for part in parts:
        data = _without(part.data, written_in.get(part.id, ()))
        for engine in engines:
            kind = getattr(engine, "name", "builtin")
            if kind in broken:
                continue
            try:
                found = engine.scan_all(data, part.true_type or part.content_type,
                                        decompose)
            except StreamRefused as exc:        # this part only: ask about the next
                file = one_line(str(part.filename or part.location))
                errors.append((kind, f"{file}: {exc}", part.id))
                continue
            except ScanError as exc:            # the engine itself: no more for this message
                broken.add(kind)
                errors.append((kind, str(exc), None))
                continue
            for detection in found:
                where = f" (in {detection.where})" if detection.where else ""
                repairable = bool(VBA_MEMBER.search(part.filename or "")) or \
                    "vbaProject" in detection.where
                infected.append(_Infection(part, detection.name, detection.engine,
                                           f"signature {detection.name}{where}", False,
                                           repairable, detection.where))
            if found:
                break
    flagged = {i.part.id for i in infected}
    level = settings["av.heuristics"]
    selected = {p.id for p in parts}
    candidates = [p for p in view.parts if p.id not in flagged and (
        p.id in selected or _is_expanded_document(p, selected, flagged, view))]
    for part, hit in detect(view, candidates, level):
        infected.append(_Infection(part, hit.name, "heuristic", f"{hit.reason} [{hit.level}]",
                                   True, hit.repairable))
    findings: list[Finding] = []
    for kind, reason, part_id in errors:
        findings.append(Finding(rule="av.engine", action=settings["scan.unprocessable"],
                                event="scan_error", reason=f"virus scan incomplete: {reason}",
                                part=part_id, data={"engine": kind}))
    for item in _one_per_file(view, infected):
        findings.extend(_actions(view, settings, item.part, item.name, item.engine, item.why,
                                 item.heuristic, item.repairable))
    return findings


def _written_in(view) -> dict[int, list[tuple[int, int]]]:
    """Text part id -> where the files written into it lie in its data (uuencoded blocks,
    view.py rule 5), those read whole to their "end" line only (`Part.inline_whole`): every
    line of those is in the block's content, scanned as a file. A block whose lines did not
    all decode is scanned in the text as well (review18 R1)."""
    out: dict[int, list[tuple[int, int]]] = {}
    for part in view.parts:
        if part.inline is not None and part.inline_whole and part.parent is not None:
            out.setdefault(part.parent, []).append(part.inline)
    return out


def _without(data: bytes, blocks) -> bytes:
    """A text without the uuencoded blocks written into it: each is scanned as a part of its
    own, with its name, and removed as one (decompose/uuencoded.py rule 2); found in the
    text, it was "the message itself is infected" (content18 B5)."""
    if not blocks:
        return data
    pieces, at = [], 0
    for start, end in sorted(blocks):
        pieces.append(data[at:max(at, start)])
        at = max(at, end)
    return b"".join(pieces) + data[at:]


class _Infection(NamedTuple):
    part: object                # the view's Part
    name: str                   # detection name
    engine: str
    why: str
    heuristic: bool
    repairable: bool
    where: str = ""             # inside the part, for an item an engine unpacked


def _one_per_file(view, infected: list[_Infection]) -> list[_Infection]:
    """One finding per infected file, so every infected member of an archive is reported
    (module header). Two detections make one (the first: signatures before heuristics)
    when they are one file: a macro found in a document and in its vbaProject.bin member;
    a container an engine scanned whole because a member could not be read, or an OLE2
    document, always scanned whole (decompose/engine_archives.py rule 5), and the
    members the decomposer did read, scanned as parts of their own, whose bytes the
    container's hold. The container's detection of itself (no `where`) goes when a member
    has that name; an item its scan unpacked goes when a member's own scan unpacked one of
    that name through the same unpackers (`_unpacked`; for an OLE2 document the engines'
    first step into it, "ole2[n]", is the decomposer's, so the packaged file found there is
    its member's), one for one: uuencoded or data:
    URI content, PDF streams in a stored member (review13 B6: each was a second finding
    and event, and counted twice toward outbreak.count). An item no member accounts for
    (the unreadable member's content) stays."""
    inside: dict[int, Counter] = {}      # container -> (name, unpackers) found in members
    for item in infected:
        for ancestor in view.ancestors(item.part.id):
            inside.setdefault(ancestor.id, Counter())[item.name, _unpacked(item.where)] += 1
    seen, out = set(), []
    for item in infected:
        part = item.part
        target = (part.id, item.where)
        held = inside.get(part.id) if part.container and not item.heuristic else None
        if VBA_MEMBER.search(part.filename or "") and part.parent is not None:
            target = (part.parent, "")
        elif held and not item.where and any(name == item.name for name, _ in held):
            continue
        elif held and item.where and held[item.name, _unpacked(item.where, part)] > 0:
            held[item.name, _unpacked(item.where, part)] -= 1
            continue
        if target in seen:
            continue
        seen.add(target)
        out.append(item)
    return out


def _unpacked(where: str, container=None) -> str:
    """The unpackers of a detection's `where`, without the item numbers: "uuencode[1]" and
    "uuencode" are one way in, wherever in the bytes it began. In an OLE2 document the
    decomposer took the first step itself ("ole2[3]/zlib[0]" is its member's "zlib")."""
    ways = _ITEM_NUMBER.sub("", where)
    if container is not None and container.container == "ole":
        ways = ways.removeprefix("ole2").removeprefix("/")
    return ways


def _is_expanded_document(part, selected, flagged, view) -> bool:
    """An OOXML document is a zip the decomposer expanded; macro heuristics judge the
    document itself when any of its members is selected."""
    if part.id in flagged or part.container != "zip" or not part.data:
        return False
    return any(p.parent == part.id and p.id in selected for p in view.parts)


def _decomposer(settings):
    from core.pipeline.decompose import decompose_bytes

    def decompose(data: bytes) -> list[bytes]:
        view = decompose_bytes(data, {}, settings)
        return [p.data for p in view.parts if p.data and not p.is_multipart][:200]
    return decompose


def _repair_target(view, part):
    """(MIME part to replace, its bytes) when the infection can be repaired, else None."""
    document = part
    if VBA_MEMBER.search(part.filename or "") and part.parent is not None:
        document = view.parts[part.parent]
    if document.span is None or document.origin != "mime" or not document.data:
        return None
    return document


def _actions(view, settings, part, name, engine, why, heuristic, repairable) -> list[Finding]:
    from core.scan.repair import NotRepairable, RepairedContent, remove_vba

    file = part.filename or part.location
    outer = part.id == 0 or (part.origin == "mime" and part.depth == 0
                             and not part.is_attachment)
    data = {"virus": name, "file": file, "location": part.location, "engine": engine,
            "heuristic": heuristic, "repaired": False, "removed": False}
    text = f"File: {one_line(str(file))}\nVirus: {one_line(name)}\n"
    common = dict(notify="virus", part=part.id)
    if outer:
        # The infected file is the message, and it goes: an infection deleted (guide Table
        # 7-4), not logged, which would read as a virus let through with a log entry.
        return [Finding(rule="av.outer_message", action="drop", event="file_deleted",
                        reason=f"{text}Found: {why}\nAction: the message itself is infected; "
                               "dropped", data={**data, "removed": True}, **common)]
    entry = mass_mailer_entry(name) if settings["av.mass_mailer_cleanup"] else None
    if entry is not None:
        return [Finding(rule="av.mass_mailer_cleanup", action="drop",
                        event="mass_mailer_cleanup",
                        reason=f"{text}Found: {why}\nMass mailer cleanup list entry: {entry}\n"
                               f"Action: mass-mailer message dropped",
                        data={**data, "mmc_entry": entry}, **common)]
    on_virus = settings["av.on_virus"]
    carrier = part.carrier if part.carrier is not None else part.id
    deleted_text = settings["av.deleted_text"] if settings["av.deleted_text.enabled"] else None
    failure = "the file cannot be repaired"
    if on_virus == "repair":
        target = _repair_target(view, part) if repairable else None
        if target is not None:
            try:
                content = RepairedContent(remove_vba(target.data))
                return [Finding(rule="av.on_virus", action="replace_part",
                                event="file_repaired",
                                reason=f"{text}Found: {why}\nAction: repaired (macros removed)",
                                data={**data, "repaired": True, "content": content,
                                      "file": target.filename or target.location},
                                notify="virus", part=target.id)]
            except NotRepairable as exc:
                failure = str(exc)
    if on_virus == "delete" or (on_virus == "repair"
                                and settings["av.on_unrepairable"] == "delete"):
        rule = "av.on_virus" if on_virus == "delete" else "av.on_unrepairable"
        return [Finding(rule=rule, action="remove_part", event="file_deleted",
                        reason=f"{text}Found: {why}\nAction: deleted"
                               + (f" ({failure})" if on_virus == "repair" else ""),
                        text=deleted_text, data={**data, "removed": True},
                        notify="virus", part=carrier)]
    rule = "av.on_virus" if on_virus == "log" else "av.on_unrepairable"
    out = [Finding(rule=rule, action="log", event="virus_logged",
                   reason=f"{text}Found: {why}\nAction: logged"
                          + (f" ({failure})" if on_virus == "repair" else ""),
                   data=data, **common)]
    if settings["av.on_not_removed"] == "drop":
        out.append(Finding(rule="av.on_not_removed", action="drop", event=None,
                           reason=f"infected file {file} ({name}) is still in the message",
                           data={"virus": name, "file": file}))
    return out
