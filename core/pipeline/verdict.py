"""Findings -> exactly one verdict (SPEC §5 "Precedence"; STYLE §1 "one verdict").

The precedence is a table, not ifs spread over checks:

    rank  disposition   wins over
    0     reject        everything (SMTP time; a finding after DATA cannot reject, it drops)
    1     drop          hold, quarantine, forward, deliver
    2     hold          quarantine, forward, deliver
    3     quarantine    forward, deliver
    4     forward       deliver
    5     deliver       (the default when no finding asks for anything)

Rules
    1. The disposition is the strongest disposition finding; among equals the first in
       registry order (checks run in SPEC §5 order) names the rule.
    2. Edits (remove_part, replace_part, add_text, add_header, prefix_subject) are kept only
       when the disposition delivers (deliver or forward), in finding order; a remove_part
       wins over a replace_part of the same part, and a part is removed once — by the
       first remove_part, carrying in its `text` every text the removals of that part ask
       for, in finding order: a file that is infected and has a blocked name gets the
       attachment-policy text and the virus text (guide36 finding 7: it got only the
       first), the recipient learning from the second that it was infected.
    3. "log" findings decide nothing; like every finding they get their event.
    4. "reject" after DATA is turned into "drop" (the 250 has been sent): the table keeps it
       at rank 0 so a future SMTP-time caller can use the same function.
    5. A disposition whose place is not built yet is carried out as INSTEAD says, before it
       competes, its reason saying why: mail asked into the spam quarantine is held, since
       that quarantine cannot show or release mail (shared.settings.SPAM_QUARANTINE_NOT_BUILT;
       upgrade finding 3: a content rule action an older release stored sent mail where
       nobody could reach it). Checks ask for what their settings say (rules.content_action,
       premium.*.disposition) and `decide` carries it out, whichever check asked; the
       pipeline writes a finding's event from the finding itself, so core/pipeline/run.py
       passes every check's findings through `carried_out`, for the event to read "held"
       rather than "superseded".
    6. A forward verdict carries out every forward finding (SPEC §5: each sends the message
       to its `forward_to` "only", not to the recipients, and none is stronger than another):
       the message goes once to each distinct address (letter case aside), with the Subject
       of the first finding naming it. `forwards` groups the addresses by that Subject, the
       message itself first: its group is the one keeping the message's own Subject when a
       forward asks for that, else the deciding finding's; every other group gets a copy
       with its Subject (core/spool/dispositions.py), so each Subject is written as a
       forward writes it, on the message with its edits. Before, only the first forward
       was carried out while every forward finding's event read "forwarded" (guide45
       finding 5: the spam trap's administrator read that mail had gone to the spam trap).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.pipeline.findings import Finding
from shared.settings import SPAM_QUARANTINE_NOT_BUILT

__all__ = ["PRECEDENCE", "INSTEAD", "Verdict", "Forward", "decide", "carried_out",
           "DELIVERING"]

PRECEDENCE: dict[str, int] = {
    "reject": 0,
    "drop": 1,
    "hold": 2,
    "quarantine": 3,
    "forward": 4,
    "deliver": 5,
}
DELIVERING = frozenset({"deliver", "forward"})

# Rule 5: (disposition, place) -> (what is done instead, the note its reason gets).
INSTEAD: dict[tuple[str, str], tuple[str, str]] = {
    ("quarantine", "spam"): ("hold", f"held, not quarantined: {SPAM_QUARANTINE_NOT_BUILT}"),
}


@dataclass(frozen=True)
class Forward:
    """Forward addresses that get the message with one Subject (rule 6)."""
    to: tuple[str, ...]
    subject: str | None                  # None: the message's own


@dataclass(frozen=True)
class Verdict:
    disposition: str                     # deliver | drop | hold | quarantine | forward
    rule: str | None = None              # the finding that decided (None: nothing asked)
    reason: str | None = None
    quarantine: str | None = None        # "spam" | "virus" with quarantine
    edits: tuple[Finding, ...] = field(default_factory=tuple)
    event: str | None = None             # the deciding finding's event ("scan_error"...)
    forwards: tuple[Forward, ...] = ()   # with forward: the message's group, then copies'

    @property
    def forward_addresses(self) -> tuple[str, ...]:
        """Every address a forward verdict sends the message to."""
        return tuple(address for group in self.forwards for address in group.to)

    @property
    def forward_subject(self) -> str | None:
        """With forward: the Subject the message itself gets (None: its own)."""
        return self.forwards[0].subject if self.forwards else None


def decide(findings: list[Finding] | tuple[Finding, ...], *, after_data: bool = True) -> Verdict:
    """The one verdict for these findings (rules 1-5). Never raises for valid findings."""
    findings = [carried_out(f) for f in findings]
    deciding: Finding | None = None
    for finding in findings:
        if not finding.is_disposition:
            continue
        if deciding is None or PRECEDENCE[finding.action] < PRECEDENCE[deciding.action]:
            deciding = finding
    disposition = deciding.action if deciding else "deliver"
    if disposition == "reject" and after_data:
        disposition = "drop"
    edits: tuple[Finding, ...] = ()
    if disposition in DELIVERING:
        edits = _edits(findings)
    if deciding is None:
        return Verdict("deliver", edits=edits)
    forwards = _forwards(findings) if disposition == "forward" else ()
    return Verdict(disposition, rule=deciding.rule, reason=deciding.reason,
                   quarantine=_place(deciding) if disposition == "quarantine" else None,
                   edits=edits, event=deciding.event, forwards=forwards)


def carried_out(finding: Finding) -> Finding:
    """`finding` as it can be carried out (rule 5): itself, or, when it asks for a place
    INSTEAD lists, the same finding asking for what is done instead."""
    row = INSTEAD.get((finding.action, _place(finding)))
    if row is None:
        return finding
    action, note = row
    return replace(finding, action=action, quarantine=None, reason=f"{finding.reason}; {note}")


def _forwards(findings) -> tuple[Forward, ...]:
    """Rule 6: the forward findings' distinct addresses grouped by Subject, the message's
    own group first."""
    subjects: dict[str, tuple[str, str | None]] = {}    # casefolded -> (address, Subject)
    for finding in findings:
        if finding.action == "forward":
            subject = (finding.forward_subject or "").strip() or None
            subjects.setdefault(finding.forward_to.casefold(), (finding.forward_to, subject))
    groups: dict[str | None, list[str]] = {}
    for address, subject in subjects.values():
        groups.setdefault(subject, []).append(address)
    first = None if None in groups else next(iter(groups))
    return tuple(Forward(tuple(groups[subject]), subject)
                 for subject in sorted(groups, key=lambda subject: subject != first))


def _place(finding: Finding) -> str | None:
    """Where a quarantine finding sends the message (the spam quarantine unless it names
    another); None for other findings."""
    return (finding.quarantine or "spam") if finding.action == "quarantine" else None


def _edits(findings) -> tuple[Finding, ...]:
    removed = {f.part for f in findings if f.action == "remove_part"}
    texts: dict[int, list[str]] = {}                # part -> texts of its removals (rule 2)
    for finding in findings:
        if finding.action == "remove_part" and finding.text:
            texts.setdefault(finding.part, [])
            if finding.text not in texts[finding.part]:
                texts[finding.part].append(finding.text)
    out, seen_removed = [], set()
    for finding in findings:
        if not finding.is_edit:
            continue
        if finding.action == "remove_part":
            if finding.part in seen_removed:
                continue
            seen_removed.add(finding.part)
            text = "\n".join(texts.get(finding.part, ())) or None
            if text != finding.text:
                finding = replace(finding, text=text)
        if finding.action == "replace_part" and finding.part in removed:
            continue
        out.append(finding)
    return tuple(out)
