"""Messages put straight into a spool queue through its own commit (shared/spool.py), for the
tests of what the core does with the spool it finds."""

from __future__ import annotations

from shared.spool import Envelope, Spool, new_queue_id

__all__ = ["put_message"]

BODY = b"Subject: s\r\n\r\nbody\r\n"


def put_message(spool: Spool, queue: str, *, body: bytes = BODY,
                recipients: tuple[str, ...] = ("c@d.test",), **fields) -> str:
    """A message from a@b.test committed to `queue`; its queue id. `fields`: the envelope's
    (hold_reason=…)."""
    queue_id = new_queue_id()
    incoming = spool.open_incoming(queue_id)
    incoming.write(body)
    spool.commit([incoming.prepare(Envelope.new(queue_id, "a@b.test", list(recipients),
                                                **fields))], queue)
    return queue_id
