"""The real pipeline behind the queue manager's seam (core/pipeline/__init__.py contract).

Per message: run decompose -> checks -> verdict -> rewrite in a worker process (run.py via
workers.py), then, back in the core: write one event per finding (naming its rule), count,
put the rewritten message in place atomically, send the notifications, and return the one
disposition. The queue manager writes the disposition event.

Rules
    1. Only the path, the envelope facts and a plain copy of the settings snapshot go to
       the worker; only plain findings come back.
    2. The rewritten file is renamed over the message and the directory fsync'd before the
       result is returned (invariant 1: every later state change is atomic).
    3. A worker crash or timeout propagates (the manager's crash path); nothing is written
       for that attempt except by the manager.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import trio

from core.pipeline import PipelineResult
from core.pipeline.decompose import SCRATCH_DIR_KEY
from core.pipeline.run import process_message
from core.pipeline.verdict import DELIVERING
from core.pipeline.workers import (PROCESS_TIMEOUT_SECONDS, RUNTIME_WORKER_SLOTS,
                                   WorkerBatcher, run_in_worker)
from shared.events import WHITELISTED, Action
from shared.spool import Envelope
from shared.status import SPAM_COUNTERS

__all__ = ["FilteringPipeline", "BATCH_MESSAGE_OCTETS", "is_large_message"]

BATCH_MESSAGE_OCTETS = 256 * 1024   # larger messages make a worker round trip of their own,
                                    # in all worker slots but one while small mail waits
                                    # (workers.py rule 7, which says why one threshold)


def is_large_message(octets: int) -> bool:
    """A message file of *octets* is a large message: the scanning workers run it alone,
    in their large lane (workers.py rule 7), and the queue manager takes it up in its own
    (core/spool/manager.py rule 13). The one place for the rule: the lanes line up only
    while both ask it (review19 r3 D1)."""
    return octets > BATCH_MESSAGE_OCTETS

EVENT_RESULTS = {"remove_part": "deleted", "replace_part": "repaired", "drop": "dropped",
                 "log": "logged", "forward": "forwarded", "hold": "held",
                 "quarantine": "quarantined", "deliver": "delivered", "reject": "rejected",
                 "whitelisted": WHITELISTED}
SUPERSEDED = "superseded"


def event_result(action: str, verdict) -> str | None:
    """What became of a finding's requested `action` (its event's result). A disposition
    other than the verdict's did not happen, nor did an edit of a message that was not
    delivered (a quarantined copy keeps the .exe): "superseded", the request staying in the
    event's data. Before, a subject forward beside a content-rule drop read "forwarded"
    (policy finding C1). A forward verdict carries out every forward finding (verdict.py
    rule 6), so each of their events reads "forwarded", its address in its data; a spam
    finding delivered marked reads "forwarded" then too, its marks on the copies."""
    if action in ("remove_part", "replace_part"):
        happened = verdict.disposition in DELIVERING
    elif action == "deliver":
        # spam delivered marked: the marks go out with a forward too (verdict rule 2), so the
        # finding reads as what became of the message (review19 D5)
        return (EVENT_RESULTS[verdict.disposition] if verdict.disposition in DELIVERING
                else SUPERSEDED)
    elif action in ("drop", "hold", "quarantine", "forward", "reject"):
        happened = action == verdict.disposition
    else:                                   # log, whitelisted
        happened = True
    return EVENT_RESULTS.get(action) if happened else SUPERSEDED


COUNTER_OF = {"attachment_deleted": "attachments_stripped",
              "subject_blocked": "policy_violations",
              "content_rule_violation": "policy_violations",
              "container_limit": "policy_violations",
              "sender_blocked": "spam_blacklist", "spam_list_block": "spam_rbl",
              "heuristic_spam": "spam_heuristic", "spam_rule_violation": "spam_heuristic"}


class FilteringPipeline:
    def __init__(self, events, counters=None, *, notifier=None,
                 timeout_seconds: float = PROCESS_TIMEOUT_SECONDS, fault: str | None = None,
                 inline: bool = False, scratch_dir: Path | None = None):
        """`fault`: test hook (run.py rule 2); `inline`: run in a thread, not a process;
        `scratch_dir`: where container tools may write (decompose/archives.py rule 3)."""
        self.events = events
        self.scratch_dir = scratch_dir
        self.counters = counters
        self.notifier = notifier
        self.timeout_seconds = timeout_seconds
        self.fault = fault
        self.inline = inline
        # Area services around a scan (core/scan/service.py for antivirus): each has
        # worker_settings() -> dict added to the worker's settings copy, and
        # `async after_scan(envelope, outcome, message_path, settings)`, called before a
        # rewritten message replaces the original. One may also have `async claim(envelope,
        # message_path, settings)`: a PipelineResult instead of a scan, or None (the
        # antivirus service files a central quarantine copy sent by a gateway it trusts).
        self.hooks: list = []
        self.batcher = WorkerBatcher(process_message, timeout_seconds=timeout_seconds,
                                     inline=inline)
        self._shared: tuple = (None, None, ())

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """The worker batching (core/pipeline/workers.py rule 4); without it each message
        makes its own round trip."""
        await self.batcher.run(task_status=task_status)

    def _shared_arguments(self, settings: Mapping) -> tuple:
        """(worker settings, fault): the same object for every message under one settings
        snapshot and hook state, so that their messages may share a worker round trip."""
        extra = {RUNTIME_WORKER_SLOTS: self.batcher.slots}    # workers.py rule 6
        if self.scratch_dir:
            extra[SCRATCH_DIR_KEY] = str(self.scratch_dir)
        for hook in self.hooks:
            extra.update(hook.worker_settings())
        key = tuple(sorted(extra.items()))
        last_settings, last_key, shared = self._shared
        if settings is not last_settings or key != last_key:
            shared = ({**settings, **extra}, self.fault)
            self._shared = (settings, key, shared)
        return shared

    async def process(self, queue_id: str, envelope: Envelope, message_path: Path,
                      settings: Mapping) -> PipelineResult:
        for hook in self.hooks:
            claim = getattr(hook, "claim", None)
            claimed = await claim(envelope, message_path, settings) if claim else None
            if claimed is not None:
                return claimed
        context = {"queue_id": queue_id, "sender": envelope.sender,
                   "recipients": [r.address for r in envelope.recipients],
                   "client_ip": envelope.client_ip, "helo": envelope.client_helo,
                   "is_generated": envelope.is_generated,
                   "skip_antispam": envelope.skip_antispam,
                   "meta": dict(envelope.meta)}
        shared = self._shared_arguments(settings)
        item = (str(message_path), context)
        # The time limit (SPEC §4: 60 s in a worker) is the worker's (workers.py rule 1):
        # waiting for a free worker while slow messages hold every one is not the message's
        # fault and must not count as its crash. The steps in the core after it (hooks,
        # the rewritten file, notices) get the same limit of their own.
        if self.batcher.running:
            outcome = await self.batcher.call(item, shared,
                                              solo=is_large_message(envelope.size))
        else:                               # not started (unit tests): one at a time
            outcome = await run_in_worker(process_message, *item, *shared,
                                          timeout_seconds=self.timeout_seconds,
                                          inline=self.inline)
        with trio.fail_after(self.timeout_seconds):
            caught_spam = self._record(envelope, outcome)
            for hook in self.hooks:
                await hook.after_scan(envelope, outcome, message_path, settings)
            if outcome.rewritten:
                envelope.size = await trio.to_thread.run_sync(_replace, outcome.rewritten,
                                                              str(message_path))
                if outcome.rewritten_is_8bit:
                    # RFC 6152 §3: 8-bit data goes out only with BODY=8BITMIME, which
                    # delivery sends by the envelope; a 7-bit message with an 8-bit
                    # disclaimer appended has become 8-bit here
                    envelope.body = "8BITMIME"
            if self.notifier is not None:
                await self.notifier.violation(envelope, outcome, settings)
        verdict = outcome.verdict
        if verdict.disposition == "forward":
            own, *copies = verdict.forwards         # verdict.py rule 6
            return PipelineResult("forward", reason=verdict.reason, forward_to=own.to,
                                  forward_copies=tuple((address, group.subject)
                                                       for group in copies
                                                       for address in group.to),
                                  rule=verdict.rule, spam=caught_spam,
                                  auto_submitted=outcome.auto_submitted)
        return PipelineResult(verdict.disposition, reason=verdict.reason, rule=verdict.rule,
                              quarantine=verdict.quarantine, spam=caught_spam,
                              auto_submitted=outcome.auto_submitted,
                              cannot_scan=verdict.event == "scan_error")

    def _record(self, envelope: Envelope, outcome) -> bool:
        """Events and counters of the outcome's findings; True when a spam check caught the
        message."""
        common = {"queue_id": envelope.queue_id, "sender": envelope.sender,
                  "recipients": [r.address for r in envelope.recipients],
                  "subject": outcome.subject[:998] or None, "size": envelope.size,
                  "client_ip": envelope.client_ip or None,
                  "connection_id": envelope.connection_id or None}
        # Findings whose report another check's event makes (spam that is also malformed:
        # core/scan/antispam/handling.py rule 3) say in it why they acted — the score and
        # the definitions that made a delivered message [Spam] with X-Bulk: 100.
        left = [f for f in outcome.findings if f.event is None and f.counts_as is not None]
        for finding in outcome.findings:
            if finding.event is not None:
                data = {**finding.data, "action": finding.action}
                if finding.action == "forward":     # whose spam trap it went to
                    data["forward_to"] = finding.forward_to
                if finding.score is not None:
                    data["score"] = finding.score
                info = finding.reason
                if finding.event == Action.MALFORMED:
                    for spam in left:
                        info = f"{info}; {spam.reason}"
                        data.update(score=spam.score, spam_rule=spam.rule,
                                    definitions=spam.data.get("definitions"))
                self.events.record(Action(finding.event), rule=finding.rule, info=info,
                                   result=event_result(finding.action, outcome.verdict),
                                   data=data, **common)
        counted = [name for name in map(self._counter, _stripping_once(outcome.findings))
                   if name]
        caught_spam = bool(SPAM_COUNTERS.intersection(counted))
        if self.counters is not None:
            for name in counted:
                self.counters.incr(name)
            if caught_spam:
                self.counters.incr("spam_messages")
        return caught_spam

    @staticmethod
    def _counter(finding) -> str | None:
        if finding.action == "whitelisted":     # a check a whitelist made stand aside: no
            return None                         # block (checks/whitelist.py rule 2)
        if finding.event == "encrypted_container":
            return "encryptions_deleted" if finding.action == "remove_part" else (
                "encryptions_logged" if finding.action == "log" else "policy_violations")
        return COUNTER_OF.get(finding.event or finding.counts_as)


def _stripping_once(findings):
    """The findings to count, with one `attachment_deleted` per attachment stripped: the Status
    page counts "top-level attachments that have been stripped from a message" (guide), and
    a finding names the top-level part it removes (filename.py: an archive's blocked members
    all remove the archive). An attachment removed as an encrypted container is counted
    under "encryptions deleted" only, whatever blocked names it holds."""
    stripped = {f.part for f in findings
                if f.event == "encrypted_container" and f.action == "remove_part"}
    for finding in findings:
        if finding.event == "attachment_deleted":
            if finding.part in stripped:
                continue
            stripped.add(finding.part)
        yield finding


def _replace(temp: str, path: str) -> int:
    """Rename the rewritten message over `path`; its size."""
    os.rename(temp, path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return os.path.getsize(path)
