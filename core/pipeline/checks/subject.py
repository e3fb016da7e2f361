"""Subject lines (SPEC §3 subject.*; guide §6 "Blocking by subject line").

Each line is a pattern matched against the WHOLE subject (`*hot*` anywhere, `hot` only the
subject "hot"), `*`/`?` wildcards, case-insensitive, after removing leading Re:/Fw:/Fwd:
prefixes in any letter case (the guide: "Fw: and Re: are added automatically"). Action
subject.action: drop | log | forward (to subject.forward_to with subject.forward_subject).
Every Subject field is matched (view.subjects): a second one must not carry a blocked subject
past the check.

Every matching line is a finding of its own, so each has its `subject_blocked` event and
counts under its pattern in the summary's Subjects Blocked (guide §7: "If a message meets
more than one subject-line blocking criteria ... reports each subject violation in the
detail report"; tester "guide", finding 5). They all ask for the same action, so the
message still has one disposition; the first line matched names its rule.

Subject and line are compared as content and spam rules compare a term with the text
(core.pipeline.rules): NFKC, characters that draw nothing dropped, look-alike letters of a
mixed-script word read as Latin, white space runs one space. A reader sees "hot deal" in
full-width "ｈｏｔ deal", in "h<soft hyphen>ot" and in "h<Cyrillic о>t"; a content rule caught
them while a subject line let them through (tester "policy", B3). Prefixes are stripped
after that, so a disguised "Ｒｅ:" is a prefix too.
"""

from __future__ import annotations

import re

from core.pipeline.findings import Finding
from core.pipeline.rules import as_compared
from shared.wildcard import matches

# the whole run of prefixes at once (one prefix per pass copied the subject once per prefix)
_PREFIXES = re.compile(r"(?:\s*(?:re|fwd?|aw|wg)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*)+",
                       re.IGNORECASE)


def strip_prefixes(subject: str) -> str:
    """The subject without its leading reply/forward prefixes ("Re: Fw: RE[2]: x" -> "x")."""
    subject = " ".join(subject.split())
    prefixes = _PREFIXES.match(subject)
    return subject[prefixes.end():] if prefixes else subject


def matching_lines(lines, subject: str):
    """Each of `lines` that matches `subject` (with or without its prefixes), in list order."""
    subject = as_compared(subject)
    candidates = (strip_prefixes(subject), subject)
    for line in lines:
        pattern = as_compared(line)
        if pattern and any(matches(pattern, text) for text in candidates):
            yield line


def matching_line(lines, subject: str) -> str | None:
    """The first of `lines` that matches `subject`, or None."""
    return next(matching_lines(lines, subject), None)


def check(view, settings) -> list[Finding]:
    if not settings["subject.enabled"] or not settings["subject.lines"]:
        return []
    matched: dict[str, str] = {}        # line -> the first Subject field it matches
    for subject in view.subjects():
        for line in matching_lines(settings["subject.lines"], subject):
            matched.setdefault(line, subject)
    return [_finding(line, subject, settings) for line, subject in matched.items()]


def _finding(line: str, subject: str, settings) -> Finding:
    action = settings["subject.action"]
    reason = f"subject {subject[:200]!r} matches blocked subject line {line!r}"
    finding = dict(rule="subject.lines", event="subject_blocked", reason=reason,
                   notify="content",
                   data={"pattern": line, "subject": subject[:500]})
    if action == "forward":
        return Finding(action="forward", forward_to=settings["subject.forward_to"],
                       forward_subject=settings["subject.forward_subject"] or None, **finding)
    return Finding(action=action, **finding)
