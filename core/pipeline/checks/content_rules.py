"""Custom content rules (SPEC §3 rules.content*; guide §6 "Blocking by custom content rules"),
through the shared rule engine (core/pipeline/rules.py). Every matching rule is a finding
asking for rules.content_action (drop | log | forward | quarantine); content rules never
notify (guide §3 note).

"quarantine" is asked for as stored (no change may set it now, but an older release did);
what becomes of it while the spam quarantine is not built is core/pipeline/verdict.py's
decision (rule 5: held), taken by core/pipeline/run.py for every check.
"""

from __future__ import annotations

from core.pipeline.findings import Finding
from core.pipeline.rules import matching_rules


def check(view, settings) -> list[Finding]:
    rules = settings["rules.content"]
    if not rules:
        return []
    action = settings["rules.content_action"]
    out = []
    subjects = "\n".join(view.subjects())
    for match in matching_rules("rules.content", rules, subjects, view.rules_text(),
                                settings["rules.body_scanning"]):
        reason = (f"content rule {match.label} matched: "
                  + ", ".join(repr(t) for t in match.terms[:10]))
        common = dict(rule=match.label, event="content_rule_violation",
                      data={"terms": list(match.terms[:50]), "rule_index": match.index})
        if action == "forward":
            out.append(Finding(action="forward", forward_to=settings["rules.content_forward_to"],
                               forward_subject=settings["rules.content_forward_subject"] or None,
                               reason=reason, **common))
        else:
            out.append(Finding(action=action, reason=reason, **common))
    return out
