"""What a check returns: findings, the one vocabulary every check speaks (STYLE §1).

Rules
    1. A finding is plain, picklable data (it crosses from a worker process to the core):
       the rule that fired, what it asks for (`action`), the event it is reported as, the
       reason an administrator reads, and — where it applies — the part, a score, forward
       details, text for an edit and the notification metatag it feeds.
    2. `action` is one word of ACTIONS. Disposition actions compete in verdict.py's table;
       edit actions are applied by rewrite.py only when the final disposition delivers; "log"
       only writes the event; so does "whitelisted", the finding of a check that a whitelist
       made stand aside (core/pipeline/checks/whitelist.py rule 1), which counts as no block.
    3. A check never writes events itself; the pipeline writes exactly one event per finding
       (`event` names the shared.events.Action), plus the queue manager's disposition event.

Never: put bytes of the message, file handles or settings objects into a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Finding", "ACTIONS", "DISPOSITION_ACTIONS", "EDIT_ACTIONS", "NOTIFY_KINDS",
           "check_failed"]

# Disposition actions, strongest first (the order lives in verdict.PRECEDENCE).
DISPOSITION_ACTIONS = ("reject", "drop", "hold", "quarantine", "forward", "deliver")
# Edits (SPEC §5): applied only when the final disposition is deliver or forward.
EDIT_ACTIONS = (
    "remove_part",      # cut `part` out of the message; `text` (optional) takes its place
    "replace_part",     # replace `part`'s content by data["content"] (bytes; antivirus repair)
    "add_text",         # append `text` to the message's text (and HTML) bodies
    "add_header",       # set header `header`: `text` (replacing any the message had);
                        # without `text`, only remove the fields of that name
    "prefix_subject",   # put `text` in front of the Subject
)
ACTIONS = (*DISPOSITION_ACTIONS, *EDIT_ACTIONS, "log", "whitelisted")

# Notification metatags a finding feeds (SPEC §3 Notifications). None = never notifies
# (antispam, content rules and spam rules never do, as the guide says).
NOTIFY_KINDS = ("virus", "content", "container", "encrypted")


@dataclass(frozen=True)
class Finding:
    """One thing a check found. See the module rules."""

    rule: str                       # the setting or rule that fired: "subject.lines", "rules.content[2]"
    action: str                     # one of ACTIONS
    event: str | None               # shared.events.Action value of its event ("subject_blocked");
                                    # None only for edits that are not decisions (disclaimer)
    reason: str                     # what the administrator reads (event `info`)
    part: int | None = None         # Part.id it concerns (edits need it)
    score: float | None = None      # antispam scores, heuristics
    forward_to: str | None = None   # with action "forward"
    forward_subject: str | None = None   # with "forward": new Subject ("" / None = keep)
    text: str | None = None         # add_text / prefix_subject / add_header value / remove_part note
    header: str | None = None       # add_header: the header name
    notify: str | None = None       # one of NOTIFY_KINDS, or None
    quarantine: str | None = None   # with "quarantine": "spam" (default) or "virus"
    data: dict[str, Any] = field(default_factory=dict)   # event data (file, pattern, virus, ...)
    counts_as: str | None = None    # with event None: the event whose Status counter it adds
                                    # to, its report left to another check (malformed spam)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown finding action {self.action!r}")
        if self.action == "forward" and not self.forward_to:
            raise ValueError("a forward finding needs forward_to")
        if self.action in ("remove_part", "replace_part") and self.part is None:
            raise ValueError(f"a {self.action} finding needs a part")
        if self.notify is not None and self.notify not in NOTIFY_KINDS:
            raise ValueError(f"unknown notify kind {self.notify!r}")

    @property
    def is_edit(self) -> bool:
        return self.action in EDIT_ACTIONS

    @property
    def is_disposition(self) -> bool:
        return self.action in DISPOSITION_ACTIONS


def check_failed(name: str, exc: BaseException, action: str) -> Finding:
    """The scan_error finding of a check that raised (core/pipeline/run.py rule 1), asking
    for `action` (the scan.unprocessable setting)."""
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Finding(rule=f"check.{name}", action=action, event="scan_error",
                   reason=f"check {name} failed: {what}"[:300])
