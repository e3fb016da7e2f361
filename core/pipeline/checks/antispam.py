"""The heuristic antispam engine as a check (SPEC §3 heuristic.*, §5 step 5; guide §5
"Identifying spam messages using the heuristic antispam engine").

Scores the message 1..100 with core/scan/antispam (engine.py; definitions.py for the rules
and model in force) and hands the score to handling.py: at or above the sensitivity's
threshold the message is spam (`heuristic_spam` event with score and definitions date,
subject prefix, X-Bulk), drop/forward by score. Not run for antispam-exempt mail (quarantine
releases, generated mail), or when a spam rule already made the message spam (spam_rules.py
handles it with score 100 — one set of marks, not two).

A whitelisted sender's message is scored too, and left alone: when the score would have made
it spam (or dropped or forwarded it), its `heuristic_spam` event reads "whitelisted" and names
the whitelist rule (whitelist.py rule 1), with no marks. That costs the scan the whitelist
used to save (about 2 ms a message, against the parsing and the other checks the message gets
anyway), which is acceptable: it is what every other message costs, so the gateway's
capacity is what it has to be anyway — a spammer who forges a whitelisted envelope sender
gets the same load scanned. A whitelisted message too malformed to have a spam event of its
own (handling.py rule 3) gets the heuristic_spam event here, since it was not spam.

The whitelist still keeps its mail away from the engine's failures: that score only makes a
trace, so an engine that fails on a whitelisted message (an exception, a MemoryError of the
worker's limit per message, pipeline/run.py rule 5) changes nothing of what becomes of the
message (`_traced`). As a failure of this check it would have become a scan_error and
`scan.unprocessable` (run.py rule 1: held by default), for mail the administrator
whitelisted to keep it from the engine (review21b R3); its trace is that scan_error stood
aside, so the failure is still on record. The engine's time limit is the worker's, for the
whole message; it is not caught here.

Whatever the engine says, and for every message, a mark the sender wrote in (X-Bulk, the
premium X-Mailmoat-* marks) goes while a setting that writes it is on (handling.py rule 5).
"""

from __future__ import annotations

from core.pipeline.checks import spam_rules
from core.pipeline.checks.whitelist import stood_aside, whitelisted
from core.pipeline.findings import Finding, check_failed
from core.scan.antispam.definitions import RUNTIME_DIR
from core.scan.antispam.engine import HeuristicEngine, threshold_for
from core.scan.antispam.handling import acts_on, forged_marks, spam_findings
from shared.events import Action

__all__ = ["check", "ENGINE"]

ENGINE = HeuristicEngine()   # definitions in force, cached per worker process


def check(view, settings) -> list[Finding]:
    return _scored(view, settings) + forged_marks(view, settings)


def _scored(view, settings) -> list[Finding]:
    if not settings["heuristic.enabled"] or view.skip_antispam or view.is_generated:
        return []
    whitelist = whitelisted(view, settings)
    if whitelist:
        return _traced(view, settings, whitelist)
    return _findings(view, settings, whitelist)


def _traced(view, settings, whitelist: str) -> list[Finding]:
    """The trace of a whitelisted message (module header): what the engine would have done,
    or its failure, stood aside; [] when it would have done nothing."""
    try:
        return stood_aside(_findings(view, settings, whitelist), whitelist)
    except Exception as exc:    # MemoryError included: its frames are gone here
        failed = check_failed("antispam", exc, settings["scan.unprocessable"])
    return stood_aside([failed], whitelist)


def _findings(view, settings, whitelist: str | None) -> list[Finding]:
    if spam_rules.first_match(view, settings)[0] is not None:
        return []
    result = ENGINE.score(view, settings.get(RUNTIME_DIR))
    if not acts_on(result.score, settings):
        return []
    rules = ", ".join(result.rules[:6])
    sensitivity = settings["heuristic.sensitivity"]
    # a drop or forward score below the sensitivity's acts on mail it does not call spam,
    # and the event says so (tester27b C1)
    lead = ("Message is considered to be spam" if result.is_spam(sensitivity)
            else f"Message is below spam score {threshold_for(sensitivity)} of sensitivity "
                 f"{sensitivity}")
    # what weighed most (engine.py rule 3): the only why of a score without a rule hit
    evidence, towards = result.evidence()
    weighed = (f"; most weight: {', '.join(evidence)} (of {towards} features towards spam)"
               if evidence else "")
    return spam_findings(
        result.score, settings, rule="heuristic.sensitivity",
        event=Action.HEURISTIC_SPAM.value, malformed=bool(view.defects) and not whitelist,
        reason=f"{lead} (score {result.score}, spam definitions "
               f"{result.definitions}{'; ' + rules if rules else ''}{weighed})",
        data={"definitions": result.definitions, "rules": list(result.rules[:20]),
              "evidence": list(evidence), "forced_by": result.forced_by})
