"""core/status.py `ClamdHealth`: the Status page's word on clamd follows when each scan asked
clamd, not the order in which the workers' outcomes reach the core (review14 B6: a message
scanned before clamd came back, finishing after one scanned once it had, turned the row back
to "not answering since <now>" until the next message).

Outcomes are the worker's own `WorkerOutcome`, each carrying the Contact its scan noted
(core/scan/clamd.py rule 6), fed to the hook as the FilteringPipeline does.
"""

from __future__ import annotations

from core.pipeline.run import WorkerOutcome
from core.pipeline.verdict import decide
from core.scan.clamd import Contact
from core.status import ClamdHealth

ADDRESS = "127.0.0.1:3310"
SETTINGS = {"av.enabled": True, "av.engine": "clamd", "av.clamd.address": ADDRESS}
REFUSED = "unreachable: Connection refused"


async def _arrives(health: ClamdHealth, contact: Contact | None) -> dict:
    """The snapshot's `clamd` once the outcome carrying `contact` has reached the core."""
    outcome = WorkerOutcome(findings=[], verdict=decide([]), clamd=contact)
    await health.after_scan(None, outcome, "", SETTINGS)
    return health.status(SETTINGS)


async def test_an_outcome_arriving_late_does_not_undo_a_later_answer():
    health = ClamdHealth()
    assert await _arrives(health, Contact(ADDRESS, REFUSED, at=1000.0)) == {
        "address": ADDRESS, "answering": False, "since": 1000.0, "problem": REFUSED}
    # clamd is back: the message scanned at 1010 finishes first, the one scanned at 1004
    # (while clamd was still down) after it
    back = {"address": ADDRESS, "answering": True, "since": 1010.0, "problem": ""}
    assert await _arrives(health, Contact(ADDRESS, "", at=1010.0)) == back
    assert await _arrives(health, Contact(ADDRESS, REFUSED, at=1004.0)) == back
    # a message that did not ask clamd says nothing either way
    assert await _arrives(health, None) == back
    # a later exchange that finds it down again counts
    assert await _arrives(health, Contact(ADDRESS, "timed out", at=1020.0)) == {
        "address": ADDRESS, "answering": False, "since": 1020.0, "problem": "timed out"}


async def test_since_is_when_the_answer_changed_and_the_words_are_the_latest():
    health = ClamdHealth()
    await _arrives(health, Contact(ADDRESS, REFUSED, at=1000.0))
    # still not answering, in other words: since stays, the words follow the latest exchange
    assert await _arrives(health, Contact(ADDRESS, "timed out", at=1003.0)) == {
        "address": ADDRESS, "answering": False, "since": 1000.0, "problem": "timed out"}
    # an older exchange arriving now changes neither
    assert await _arrives(health, Contact(ADDRESS, "failed: Broken pipe", at=1001.0)) == {
        "address": ADDRESS, "answering": False, "since": 1000.0, "problem": "timed out"}
