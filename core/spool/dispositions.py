"""What the queue manager does with a pipeline verdict or a pipeline crash (SPEC §4, §5).

Rules
    1. "deliver" marks the envelope processed in memory only: delivery follows at once and
       persists it if anything is deferred, and a crash in between only scans the message
       again (at least once, SPEC §4) — one fsync'd rewrite fewer per message. "forward"
       replaces the recipients by `forward_to` and the sender by the null sender (no
       bounce to a forged sender) and persists that before delivery; "drop" deletes once
       its event is committed (a crash before that drops it again); "hold" moves to hold/
       with the reason. Each writes its disposition event
       (FORWARDED, DROPPED, HELD) naming the rule, and counts it. "quarantine" moves the
       message to quarantine/<folder> ("spam" unless the result says "virus") with a
       QUARANTINED event.
    2. A crash (exception or timeout) is a SCAN_ERROR event and `crash_count` + 1, written
       before anything else; at CRASH_LIMIT the message goes to hold/ with a HELD event of
       rule "suspect_message" (the alert engine mails the Suspect message alert from it);
       below it the message is tried again after CRASH_RETRY_SECONDS.
    3. A message held because it could not be scanned (the deciding finding a scan_error:
       scan.unprocessable hold, a scanner that did not answer) is "suspect" too in the
       guide's words ("a message that triggers a 'Cannot Scan' error ... is considered
       suspect and moved to the hold queue"): its HELD event's data has cannot_scan, and
       the Suspect message alert (on by default) follows, so innocent mail does not sit in
       hold/ unnoticed while alerts.scan_error is off (alerts finding B7).
    4. A forward's `forward_copies` (other forward addresses with another Subject:
       core/pipeline/verdict.py rule 6) are copies of the message as the pipeline left it,
       Subject replaced as a hold-queue forward replaces it (files.copy_with_subject), null
       sender, never scanned; they are made before the message itself is written as
       processed, so a crash in between makes them again (at least once, SPEC §4) rather
       than never. The one FORWARDED event lists every address and the copies' ids.
    5. Forwarded mail goes from the null sender (rules 1, 4; hold.py rule 4), and its
       delivery events (`delivered`, `deferred`, `delivery_failed`, `completed`) keep that
       in their sender column: it is what the next hop was given, and a refusal of <>
       reads as one. Whose mail it is goes into their data (`origin_data`):
       `original_sender`, and for a copy `original_queue_id`, the message it copies, whose
       `forwarded` event names the copy. The reports search data too. Their Subject column
       is the forwarded message's, for its copies too (`copy_meta`), whatever Subject the
       forward gave them: every row of a forward's story — accepted, the finding,
       forwarded, the copies' deliveries — is found by one search for it. (Mail Mailmoat
       writes itself, a bounce or an alert, has its own: QueueManager.submit_generated.)
"""

from __future__ import annotations

import trio

from core.spool import files
from shared.events import Action
from shared.spool import SUBJECT_META, Envelope, Recipient

__all__ = ["apply_result", "crashed", "SUSPECT_RULE", "copy_meta", "origin_data"]

SUSPECT_RULE = "suspect_message"
# envelope meta keys of forwarded mail (rule 5)
ORIGINAL_SENDER_META = "original_sender"
ORIGINAL_META = "original"          # a copy's: the queue id of the message it copies


async def apply_result(manager, envelope: Envelope, result) -> bool:
    """True when the message goes on to delivery (rule 1)."""
    disposition = result.disposition
    if disposition == "drop":
        manager.counters.incr("dropped")
        manager.events.record(Action.DROPPED, rule=result.rule, info=result.reason,
                              **envelope.event_fields())
        manager.delete_when_recorded("fast", envelope.queue_id)
        return False
    if disposition == "quarantine":
        folder = getattr(result, "quarantine", None) or "spam"
        envelope.processed = True
        await manager._write("fast", envelope)
        await manager._move(envelope.queue_id, "fast", f"quarantine/{folder}")
        manager.counters.incr("quarantined")
        manager.events.record(Action.QUARANTINED, rule=result.rule, info=result.reason,
                              data={"folder": folder}, **envelope.event_fields())
        return False
    if disposition == "hold":
        await hold(manager, "fast", envelope, result.reason or "held by policy", result.rule,
                   cannot_scan=result.cannot_scan)
        return False
    if disposition == "forward":
        copies = {address: await _forward_copy(manager, envelope, address, subject)
                  for address, subject in result.forward_copies}                # rule 4
        data = {"forward_to": [*result.forward_to, *copies]}
        if copies:
            data["copies"] = copies
        manager.events.record(Action.FORWARDED, rule=result.rule, info=result.reason,
                              data=data, **envelope.event_fields())
        manager.counters.incr("forwarded")
        envelope.recipients = [Recipient(address) for address in result.forward_to]
        # The null sender, as for every copy Mailmoat makes (hold-queue forwards, alerts):
        # a bounce from the forward address would go to the original sender, forged in
        # much of what policy forwards. FORWARDED above keeps that sender; the delivery
        # events find it in the meta (rule 5).
        envelope.meta[ORIGINAL_SENDER_META] = envelope.sender
        envelope.sender = ""
        envelope.processed = True
        await manager._write("fast", envelope)
        return True
    envelope.processed = True
    return True


async def _forward_copy(manager, envelope: Envelope, address: str, subject: str) -> str:
    """A copy of the fast/ message to `address` with `subject` (rule 4); its queue id."""
    copy = Envelope.new(envelope.queue_id, "", [address], clock=manager.clock.now,
                        is_generated=True, processed=True, body=envelope.body,
                        smtputf8=envelope.smtputf8 or not address.isascii(),
                        meta=copy_meta("policy_forward", envelope))
    new_id = await trio.to_thread.run_sync(files.copy_with_subject, manager.spool, "fast",
                                           envelope.queue_id, copy, subject)
    manager.message_accepted(new_id)
    return new_id


def copy_meta(kind: str, original: Envelope) -> dict:
    """The meta of a forwarded copy of `original`: what its events say (rule 5)."""
    meta = {"kind": kind, ORIGINAL_META: original.queue_id,
            ORIGINAL_SENDER_META: original.meta.get(ORIGINAL_SENDER_META, original.sender)}
    if original.subject():
        meta[SUBJECT_META] = original.subject()
    return meta


def origin_data(envelope: Envelope) -> dict:
    """What the data of a message's delivery events says of where it came from: made by
    Mailmoat (`generated`: the reports count it delivered, never accepted), and for
    forwarded mail the original sender and the message copied (rule 5)."""
    data: dict = {"generated": True} if envelope.is_generated else {}
    sender = envelope.meta.get(ORIGINAL_SENDER_META)
    if isinstance(sender, str):
        data[ORIGINAL_SENDER_META] = sender
    original = envelope.meta.get(ORIGINAL_META)
    if isinstance(original, str):
        data["original_queue_id"] = original
    return data


async def hold(manager, queue: str, envelope: Envelope, reason: str, rule: str | None, *,
               cannot_scan: bool = False) -> None:
    """Move to hold/ with `reason`. `cannot_scan`: held because it could not be scanned,
    which the guide calls a suspect message too (the event's data says so; rule 3)."""
    envelope.hold_reason = reason
    await manager._write(queue, envelope)
    await manager._move(envelope.queue_id, queue, "hold")
    manager.counters.incr("held")
    manager.events.record(Action.HELD, rule=rule, info=reason,
                          data={"cannot_scan": True} if cannot_scan else None,
                          **envelope.event_fields())


async def crashed(manager, envelope: Envelope, text: str) -> None:
    from core.spool.manager import CRASH_LIMIT, CRASH_RETRY_SECONDS
    envelope.crash_count += 1
    manager.events.record(Action.SCAN_ERROR, rule="pipeline.crash",
                          info=f"processing crashed ({envelope.crash_count}/{CRASH_LIMIT}): {text}",
                          **envelope.event_fields())
    if envelope.crash_count >= CRASH_LIMIT:
        await hold(manager, "fast", envelope,
                   f"suspect message: processing crashed {envelope.crash_count} times "
                   f"(last: {text})", SUSPECT_RULE)
        return
    await manager._write("fast", envelope)
    manager._requeue_later(envelope.queue_id, CRASH_RETRY_SECONDS)
