"""The policy pipeline's seam with the queue manager (SPEC §5; ARCHITECTURE "way a message travels").

What this package owns (for now)
    The contract the queue manager calls for every message in the fast queue, and a
    pass-through implementation. The pipeline issue replaces `PassThroughPipeline` with the
    real one (decompose -> checks -> verdict -> rewrite, in worker processes); the queue
    manager does not change.

The contract
    `await pipeline.process(queue_id, envelope, message_path, settings) -> PipelineResult`
    - runs once per message (the manager sets `envelope.processed` afterwards), may rewrite
      the message file in place atomically (write temp, fsync, rename) and write events;
    - returns exactly one disposition: "deliver" (to the envelope's recipients), "drop"
      (delete), "hold" (move to hold/ with `reason`) or "forward" (deliver to `forward_to`
      only, instead of the recipients; the pipeline has already put `…forward_subject` into
      the message file; each of `forward_copies` gets a copy of the message with its own
      Subject) or "quarantine" (move to spool quarantine/<quarantine>, default
      "spam"). The pipeline writes one event per finding; the queue
      manager writes the disposition event (DROPPED / HELD / FORWARDED, with `rule` and
      `reason`) and counts it (core/spool/dispositions.py);
    - raising is a crash: the manager counts it in `envelope.crash_count` and holds the
      message at the third (SPEC §4 "Suspect message"). Never return for a message that
      was not looked at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.spool import Envelope

__all__ = ["PipelineResult", "PassThroughPipeline", "DISPOSITIONS"]

DISPOSITIONS = ("deliver", "drop", "hold", "forward", "quarantine")


@dataclass(frozen=True)
class PipelineResult:
    disposition: str = "deliver"          # one of DISPOSITIONS
    reason: str | None = None             # for the hold reason / the event
    forward_to: tuple[str, ...] = ()      # with "forward": the only recipients
    forward_copies: tuple[tuple[str, str], ...] = ()   # with "forward": (address, Subject)
                                          # each of which gets a copy with that Subject
    rule: str | None = None               # the setting or rule that decided
    quarantine: str | None = None         # with "quarantine": "spam" | "virus" folder
    spam: bool = False                    # a spam check caught it (delivered marked, or not)
    auto_submitted: bool = False          # an automatic response or report (RFC 3834)
    cannot_scan: bool = False             # decided by a scan error (guide: "Cannot Scan")

    def __post_init__(self) -> None:
        if self.disposition not in DISPOSITIONS:
            raise ValueError(f"unknown disposition {self.disposition!r}")
        if self.disposition == "forward" and not self.forward_to:
            raise ValueError("a forward needs forward_to")


class PassThroughPipeline:
    """Every message is delivered unchanged (no policy yet)."""

    async def process(self, queue_id: str, envelope: Envelope, message_path: Path,
                      settings: Mapping) -> PipelineResult:
        return PipelineResult("deliver")
