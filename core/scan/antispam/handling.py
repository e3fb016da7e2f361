"""What happens to a message found to be spam (SPEC §3 heuristic.*; guide §5 "Handling
detected spam"): the findings a heuristic score — or a spam rule's score 100 — asks for.

Rules
    1. A score at or above the sensitivity's threshold is spam: the Subject gets
       `heuristic.subject_prefix` (when not empty) and, with `heuristic.x_bulk`, the header
       `X-Bulk: <score>` — edits, applied only when the message is delivered or forwarded.
    2. `heuristic.drop_score` and `heuristic.forward_score` compare the score itself,
       whatever the sensitivity (SPEC): score >= drop_score -> drop; else score >=
       forward_score -> forward to `heuristic.forward_to`. Otherwise the message is
       delivered, marked ("All messages tagged as spam will be delivered unless ..."): the
       finding asks for "deliver", so its event reads "delivered" (or "superseded" when
       another finding drops, holds or forwards the message). It is no "log": SPEC §5's log
       leaves the message as it is, and this one gets the marks (guide19 C5: "logged" read
       as "left untouched").
    3. The deciding finding carries the event (`event`), the score and the definitions date;
       the edits carry none. When the message is also malformed the event is left to the
       malformed check (guide Table 7-9: "If a spam message is also malformed, the event will
       be reported only as malformed") — the decision still stands and names its rule, the
       message still counts as spam on the Status page (`counts_as`), and the malformed
       event carries this finding's reason, score and definitions (core/pipeline/
       service.py), so a report says why a delivered message is marked.
    4. Nothing happens below both the threshold and the drop/forward scores.
    5. The marks are the gateway's alone: while a setting that writes a mark is on, that
       field as the sender wrote it is removed from every message delivered (`forged_marks`),
       marked or not. A mail server or client rule that reads X-Bulk would otherwise read a
       spammer's "X-Bulk: 0" on the spam the engine missed (SpamAssassin removes incoming
       X-Spam-* fields so). When the gateway marks the message, its own field replaces them.
"""

from __future__ import annotations

from core.pipeline.findings import Finding
from core.scan.antispam.engine import threshold_for

__all__ = ["spam_findings", "acts_on", "forged_marks", "X_BULK_HEADER", "MARK_SETTINGS"]

X_BULK_HEADER = "X-Bulk"
# Each mark and the settings that write it (SPEC §3 heuristic.x_bulk, premium.*): rule 5.
MARK_SETTINGS: dict[str, tuple[str, ...]] = {
    X_BULK_HEADER: ("heuristic.x_bulk", "premium.spam.x_bulk", "premium.suspected.x_bulk"),
    "X-Mailmoat-Folder": ("premium.spam.spam_folder", "premium.suspected.spam_folder"),
    "X-Mailmoat-Language": ("premium.language.enabled",),
}


def forged_marks(view, settings) -> list[Finding]:
    """Rule 5: an `add_header` edit without a value — the fields go, none is put in their
    place — for each mark the message carries while a setting that writes it is on."""
    present = {name.lower() for name, _value in view.headers}
    out = []
    for header, keys in MARK_SETTINGS.items():
        on = [key for key in keys if settings[key]]
        if on and header.lower() in present:
            out.append(Finding(rule=on[0], action="add_header", event=None, header=header,
                               text=None, reason=f"{header} from the sender removed"))
    return out


def acts_on(score: int, settings) -> bool:
    """Whether `spam_findings` asks for anything at this score (rules 1, 2, 4): the engine's
    evidence (engine.py rule 3) is worked out only then."""
    drop, forward = settings["heuristic.drop_score"], settings["heuristic.forward_score"]
    return (score >= threshold_for(settings["heuristic.sensitivity"])
            or (drop is not None and score >= drop)
            or (forward is not None and bool(settings["heuristic.forward_to"])
                and score >= forward))


def spam_findings(score: int, settings, *, rule: str, event: str, reason: str,
                  malformed: bool = False, data: dict | None = None) -> list[Finding]:
    is_spam = score >= threshold_for(settings["heuristic.sensitivity"])
    drop, forward = settings["heuristic.drop_score"], settings["heuristic.forward_score"]
    forward_to = settings["heuristic.forward_to"]
    # the deciding finding: its event, or — malformed — only its count (rule 3)
    decision = dict(event=None, counts_as=event) if malformed else dict(event=event)
    data = {**(data or {}), "score": score}
    out: list[Finding] = []
    if drop is not None and score >= drop:
        out.append(Finding(rule="heuristic.drop_score" if rule.startswith("heuristic") else rule,
                           action="drop", score=score, data=data, **decision,
                           reason=f"{reason}; score {score} >= drop score {drop}"))
    elif forward is not None and forward_to and score >= forward:
        out.append(Finding(rule="heuristic.forward_score" if rule.startswith("heuristic")
                           else rule, action="forward", forward_to=forward_to,
                           score=score, data=data, **decision,
                           reason=f"{reason}; score {score} >= forward score {forward}"))
    elif is_spam:
        out.append(Finding(rule=rule, action="deliver", score=score, data=data, **decision,
                           reason=reason))
    if not out:
        return []
    # any spam finding marks the message (a dropped one goes with its marks)
    prefix = settings["heuristic.subject_prefix"]
    if prefix:
        out.append(Finding(rule=rule, action="prefix_subject", event=None, text=prefix,
                           reason="spam: subject prefix"))
    if settings["heuristic.x_bulk"]:
        out.append(Finding(rule=rule, action="add_header", event=None,
                           header=X_BULK_HEADER, text=str(score),
                           reason="spam: X-Bulk header"))
    return out
