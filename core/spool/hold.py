"""Hold-queue actions the console and CLI request (SPEC §3 "Hold queue", guide §3).

Rules
    1. `ids` None means every message in hold/; unknown ids are ignored. Each returns how
       many messages it acted on.
    2. Reprocess: crash count and hold reason reset, `processed` cleared (the pipeline runs
       again), envelope rewritten, then the message moves to fast/.
    3. Drop: deleted, a DROPPED event (rule "hold.drop") and the `dropped` counter.
    4. Forward: a copy to one address, Subject replaced when given (as a policy forward
       replaces it: files.copy_with_subject), sent with the null sender and never scanned
       (SPEC: "copies are not scanned, originals stay"); FORWARDED event. The copy's own
       events say whose mail it is, under the held message's Subject (dispositions.py rule 5).
    5. Each envelope an action reads goes to the queue manager's load hooks first (`_read`),
       as the look at hold/ after a start hands over those it reads (manager.py rule 15),
       which are idempotent: an entry that look left out (an error reading it) gets its
       lost `accepted` event before it is delivered, dropped or forwarded (review24a R1:
       it had none, and the next start could not write it, the entry gone).
"""

from __future__ import annotations

import trio

from core.spool import files
from core.spool.dispositions import copy_meta
from shared.events import Action
from shared.spool import Envelope

__all__ = ["reprocess", "drop", "forward"]


async def _ids(manager, ids) -> list[str]:
    return await trio.to_thread.run_sync(files.list_ids, manager.spool, "hold", ids)


async def _read(manager, queue_id: str) -> Envelope | None:
    """The held entry's envelope (`manager._read`), handed to the load hooks (rule 5)."""
    envelope = await manager._read("hold", queue_id)
    if envelope is not None:
        for hook in manager.load_hooks:
            hook(envelope)
    return envelope


async def reprocess(manager, ids=None) -> int:
    count = 0
    for queue_id in await _ids(manager, ids):
        envelope = await _read(manager, queue_id)
        if envelope is None:
            continue
        envelope.crash_count = 0
        envelope.hold_reason = None
        envelope.processed = False
        await manager._write("hold", envelope)
        await manager._move(queue_id, "hold", "fast")
        manager.message_accepted(queue_id)
        count += 1
    return count


async def drop(manager, ids=None) -> int:
    count = 0
    for queue_id in await _ids(manager, ids):
        envelope = await _read(manager, queue_id)
        try:
            await manager._delete("hold", queue_id)
        except FileNotFoundError:
            continue
        manager.counters.incr("dropped")
        manager.events.record(Action.DROPPED, queue_id=queue_id, rule="hold.drop",
                              info="dropped from the hold queue by an administrator",
                              sender=envelope.sender if envelope else None,
                              recipients=[r.address for r in envelope.recipients] if envelope
                              else None, subject=envelope.subject() if envelope else None,
                              size=envelope.size if envelope else None)
        count += 1
    return count


async def forward(manager, address: str, subject: str | None = None, ids=None) -> int:
    count = 0
    for queue_id in await _ids(manager, ids):
        original = await _read(manager, queue_id)
        if original is None:
            continue
        envelope = Envelope.new(queue_id, "", [address], clock=manager.clock.now,
                                is_generated=True, processed=True, body=original.body,
                                smtputf8=original.smtputf8 or not address.isascii(),
                                meta=copy_meta("hold_forward", original))
        new_id = await trio.to_thread.run_sync(files.copy_with_subject, manager.spool, "hold",
                                               queue_id, envelope, subject)
        manager.message_accepted(new_id)
        manager.counters.incr("forwarded")
        manager.events.record(Action.FORWARDED, queue_id=queue_id, rule="hold.forward",
                              sender=original.sender, recipients=[address],
                              size=original.size, subject=original.subject(),
                              info=f"copy {new_id} to {address}",
                              data={"copy_queue_id": new_id, "subject": subject})
        count += 1
    return count
