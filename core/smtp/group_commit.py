"""Group commit: received messages made durable in batches, before their 250.

What this module owns
    `GroupCommitter`, one per process that listens for SMTP, and `PendingMessage`, what a
    session hands it. `commit` returns once the message and its envelope are fsync'd,
    renamed into fast/ and fast/ is fsync'd (ARCHITECTURE invariant 1), and raises OSError
    when they are not; the session answers 250 only after it returned
    (core/smtp/reception.py).

Never: block the event loop (a batch is written in one worker thread), or make a session
wait for a committer that has stopped (GroupCommitter's docstring).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import trio

from shared.spool import Envelope

__all__ = ["GroupCommitter", "PendingMessage"]


@dataclass
class PendingMessage:
    """A received message on its way to fast/: buffered in memory (small messages) or
    already streaming into its incoming/ file (large ones)."""

    queue_id: str
    envelope: Envelope
    chunks: list[bytes] | None = None
    incoming: object | None = None
    envelope_json: bytes = b""      # set by the commit: the envelope as written


class GroupCommitter:
    """Makes received messages durable in batches, in one worker thread per batch: write
    each message and envelope into incoming/ (`Spool.write_incoming`, or `prepare` for a
    message already streamed there), make the whole batch durable with one sync of the
    file system, then rename all of them into fast/ and fsync fast/ once (`Spool.commit`).
    Messages that finish while a batch is being written form the next batch, so one sync
    covers every message accepted at the same moment (group commit) and the event loop
    pays one thread hop per batch.

    When `run` ends (shutdown cancels it) it still commits what is pending, and later
    commits fail at once: a session waiting for its commit, shielded, must never wait for
    a committer that is gone — that hung listener processes and the core at shutdown."""

    def __init__(self, spool):
        self.spool = spool
        self._pending: list[PendingMessage] = []
        self._waiters: list[trio.Event] = []
        self._wakeup = trio.Event()
        self._results: dict[int, OSError | None] = {}
        self._closed = False

    async def commit(self, pending: PendingMessage) -> None:
        """Return once the message is in fast/ and durable; OSError when it is not."""
        if self._closed:
            raise OSError(errno.ESHUTDOWN, "the listener is shutting down")
        done = trio.Event()
        self._pending.append(pending)
        self._waiters.append(done)
        self._wakeup.set()
        with trio.CancelScope(shield=True):  # the commit happens whether or not we wait
            await done.wait()
        error = self._results.pop(id(done))
        if error is not None:
            raise error

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                await self._commit_pending()
        finally:
            self._closed = True
            with trio.CancelScope(shield=True):
                await self._commit_pending()

    async def _commit_pending(self) -> None:
        batch, waiters = self._pending, self._waiters
        self._pending, self._waiters = [], []
        if not batch:
            return
        with trio.CancelScope(shield=True):
            errors = await trio.to_thread.run_sync(self._write_batch, batch)
        for item, done in zip(batch, waiters):
            self._results[id(done)] = errors.get(item.queue_id)
            done.set()

    def _write_batch(self, batch: list[PendingMessage]) -> dict[str, OSError]:
        errors: dict[str, OSError] = {}
        prepared = []
        for item in batch:
            try:
                if item.incoming is None:
                    message = self.spool.write_incoming(item.envelope, item.chunks or ())
                else:
                    message = item.incoming.prepare(item.envelope, sync=False)
                item.envelope_json = message.envelope_json
                prepared.append(message)
            except OSError as exc:
                errors[item.queue_id] = exc
                if item.incoming is not None:
                    item.incoming.abort()
        try:
            self.spool.commit(prepared)
        except OSError as exc:
            # Those already renamed stay queued (a duplicate at worst after the client's
            # retry); the rest are removed.
            for message in prepared:
                errors[message.queue_id] = exc
                self.spool.discard_incoming(message.queue_id)
        return errors

