"""Settings reload and console commands: how the core hears the console and the CLI.

- `SettingsWatcher` keeps an immutable settings snapshot and swaps it when another process
  commits to the database (`PRAGMA data_version` changes), polled every POLL_SECONDS — well
  inside the 2-second design figure of SPEC §3. Code reads `watcher.current` once per message
  or session, so a change applies to the next one (ARCHITECTURE invariant 5).
- `CommandRunner` claims pending rows of the `commands` table in order, runs the handler
  registered for their kind and records done/failed with a result text. A handler sees
  every setting committed before its command was: the console saves a move into the
  exclusion list, then asks for the entries' deletion, and the core must not delete them
  while still reading the old exclusions (mail delivered in between would add them back).
  At start it takes up the rows a previous run left `running` (stopped in the middle, or a
  database backup taken then): one that `can_run_again` is pending again, marked RESUMED,
  any other failed with INTERRUPTED. Left running, a row hid what it acts on from the
  console for good (the console leaves out what a pending or running command is about to
  change). A resumed request refused is done: the kinds that can run again are refused only
  when nothing they name is there any more, which the first run did (a drop, a delete), or
  someone else meanwhile. The result of a handler that returned is written even when the
  core stops then, so a clean stop leaves `running` only a row cut off in its handler.
  A kind registered with `waits_for` (the hold actions and the slow-queue retry: the queue
  manager's look at hold/ and slow/ after a start, core/spool/manager.py rule 15) does not
  hold up the others: a row of it claimed while that event is not set waits apart, `running`
  (the CLI sees a request taken up through: core/queue_commands.py), and the rows of other kinds are carried out meanwhile;
  those of the waiting kinds stay pending behind it, in order. It is carried out as soon as
  the event is set, a stop meanwhile puts it back to pending (it never began). Before, it
  waited in its handler and every request after it waited too (review22b D2). The claim
  marks it PARKED in the same transaction, a mark cleared before its handler starts, so a
  row left `running` while it waited (a kill -9, a crash, a put-back that met the lock) is
  pending again at the next start, as it was, neither failed nor RESUMED: it never began
  (review24a R2: it failed as INTERRUPTED, "part of it may be done").
- A database locked past the busy timeout by another program (shared/busy.py) delays both:
  the watcher keeps the settings it has, the runner claims nothing and writes a result it
  holds at its next poll, saying so once; the settings read after a claim waits for the
  lock too, so a handler still sees what was committed before its command (a stop then puts
  the row back to pending). None of this stops the core (scale19 A1: the command
  poller's "database is locked" took SMTP down). A stop while a result waits for the lock
  leaves its row `running`, taken up at the next start as above; so does a stop whose
  put-back of a waiting row (claimed, or PARKED) meets the lock. A waiting row whose event
  is set while the database is locked stays PARKED until the mark can be cleared.
"""

from __future__ import annotations

import json
import sqlite3
import time
from types import MappingProxyType
from typing import Any, Awaitable, Callable, Mapping

import trio

from shared import db
from shared.busy import BusyNotice, is_busy
from shared.commands import INTERRUPTED, RESUMED, RESUMED_RESULT, can_run_again
from shared.settings_store import load

__all__ = ["SettingsWatcher", "CommandRunner", "CommandRefused", "POLL_SECONDS"]

POLL_SECONDS = 0.5


class SettingsWatcher:
    def __init__(self, db_path, said_as: str = "core"):
        """`said_as`: how its busy notices name the process (an SMTP listener process's
        own, core/smtp/listener_main.py said_as), as the event writer's do."""
        self.db_path = db_path
        self._conn = db.connect(db_path)
        self._version = self._data_version()
        self.current: Mapping[str, Any] = MappingProxyType(load(self._conn))
        self._listeners: list[Callable[[Mapping, Mapping], None]] = []
        self._reading = trio.Lock()      # one reload at a time on the one connection
        self.busy = BusyNotice("reloading the settings", said_as)

    def __call__(self) -> Mapping[str, Any]:
        return self.current

    def on_change(self, listener: Callable[[Mapping, Mapping], None]) -> None:
        """`listener(old, new)` runs in the trio thread after each swap."""
        self._listeners.append(listener)

    def _data_version(self) -> int:
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def _reload_if_changed(self):
        version = self._data_version()
        if version == self._version:
            return None
        self._version = version
        return MappingProxyType(load(self._conn))

    async def refresh(self) -> None:
        """Swap in the stored settings now if another process changed them."""
        async with self._reading:
            fresh = await trio.to_thread.run_sync(self._reload_if_changed)
        if fresh is not None and fresh != self.current:
            old, self.current = self.current, fresh
            for listener in self._listeners:
                listener(old, fresh)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await trio.sleep(POLL_SECONDS)
                try:
                    await self.refresh()
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc):
                        raise
                    self.busy.locked(exc)       # the settings in force stay (module header)
                else:
                    self.busy.done()
        finally:
            with trio.CancelScope(shield=True):
                async with self._reading:
                    self._conn.close()


Handler = Callable[[dict], Awaitable[str]]


class CommandRefused(Exception):
    """A request the core cannot carry out as asked; its text is the whole result."""


_LOCKED = object()       # CommandRunner._attempt: the database stayed locked

# The args key of a claimed row that waits apart for its kind's event (module header): only
# the runner writes and reads it.
PARKED = "parked"


class CommandRunner:
    def __init__(self, db_path, settings: SettingsWatcher | None = None):
        self.db_path = db_path
        self.settings = settings
        self.handlers: dict[str, Handler] = {}
        self.waits_for: dict[str, trio.Event] = {}
        self.busy = BusyNotice("taking up console and command-line requests (commands)")

    def register(self, kind: str, handler: Handler, *,
                 waits_for: trio.Event | None = None) -> None:
        """`waits_for`: what a request of `kind` waits for before its handler runs, apart
        from the others (module header)."""
        self.handlers[kind] = handler
        if waits_for is not None:
            self.waits_for[kind] = waits_for

    def _waiting(self, kind: str) -> trio.Event | None:
        """The event a request of `kind` still waits for, if any."""
        event = self.waits_for.get(kind)
        return event if event is not None and not event.is_set() else None

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        conn = await trio.to_thread.run_sync(db.connect, self.db_path)
        taken_up = await self._attempt(self._take_up_interrupted, conn) is not _LOCKED
        parked = None       # claimed, waiting apart for its kind's event (module header)
        task_status.started()
        try:
            while True:
                if not taken_up:        # before any claim: a pending row may be resumed
                    taken_up = await self._attempt(self._take_up_interrupted,
                                                   conn) is not _LOCKED
                if parked is not None and self._waiting(parked[1]) is None:
                    # its PARKED mark cleared before its handler starts (module header)
                    claimed = _LOCKED
                    if await self._attempt(self._unpark, conn, parked[0],
                                           parked[2]) is not _LOCKED:
                        claimed, parked = (*parked, False), None
                elif taken_up:
                    apart = [str(kind) for kind in self.waits_for
                             if self._waiting(kind) is not None]
                    # while one waits, the waiting kinds' rows stay pending behind it
                    claimed = await self._attempt(self._claim, conn,
                                                  [] if parked is None else apart, apart)
                else:
                    claimed = _LOCKED
                if claimed is None or claimed is _LOCKED:
                    waiting = self._waiting(parked[1]) if parked is not None else None
                    if waiting is None:
                        await trio.sleep(POLL_SECONDS)
                    else:               # the parked one goes as soon as it may
                        with trio.move_on_after(POLL_SECONDS):
                            await waiting.wait()
                    continue
                command_id, kind, args, parking = claimed
                claimed = command_id, kind, args
                if parking:
                    parked = claimed
                    continue
                resumed = isinstance(args, dict) and bool(args.pop(RESUMED, False))
                if self.settings is not None:
                    await self._settings_before(conn, command_id)
                handler = self.handlers.get(kind)
                if handler is None:
                    state, result = "failed", f"unknown command {kind!r}"
                else:
                    try:
                        state, result = "done", await handler(args)
                    except CommandRefused as exc:
                        state, result = "failed", str(exc)
                        if resumed:
                            state, result = "done", f"nothing left to do: {exc}"
                    except Exception as exc:  # boundary: a failed command is recorded
                        state, result = "failed", f"{type(exc).__name__}: {exc}"
                    if resumed:
                        result = RESUMED_RESULT + result
                await self._record(conn, command_id, state, result)
        finally:
            with trio.CancelScope(shield=True):
                if parked is not None:      # one try: left `running`, PARKED, if locked
                    await self._attempt(self._put_back, conn, parked[0], parked[2])
                await trio.to_thread.run_sync(conn.close)

    async def _attempt(self, write, conn, *args):
        """`write(conn, *args)` in a thread: what it returned, or _LOCKED when the database
        stayed locked past the busy timeout (said once: module header)."""
        try:
            result = await trio.to_thread.run_sync(write, conn, *args)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            self.busy.locked(exc)
            return _LOCKED
        self.busy.done()
        return result

    async def _settings_before(self, conn, command_id) -> None:
        """The settings committed before the claimed command, read before its handler runs
        (module header). A read that meets the lock past the busy timeout is tried again
        every POLL_SECONDS, said once, as the watcher does: the handler never runs on
        settings older than its command (review19 r5 R2: the lock here stopped the core).
        A stop meanwhile puts the row back to pending, for it never began."""
        try:
            while True:
                try:
                    await self.settings.refresh()
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc):
                        raise
                    self.busy.locked(exc)
                else:
                    self.busy.done()
                    return
                await trio.sleep(POLL_SECONDS)
        except trio.Cancelled:
            with trio.CancelScope(shield=True):     # one try: left `running` if locked
                await self._attempt(self._put_back, conn, command_id)
            raise

    async def _record(self, conn, command_id, state, result) -> None:
        """The work is done: say so, a try at a time shielded from a stop, every
        POLL_SECONDS while the database stays locked (module header)."""
        while True:
            with trio.CancelScope(shield=True):
                written = await self._attempt(self._finish, conn, command_id, state, result)
            if written is not _LOCKED:
                return
            await trio.sleep(POLL_SECONDS)

    @staticmethod
    def _take_up_interrupted(conn) -> None:
        """Rows left `running` by a previous run of the core (one core per data home: none
        is running now). One PARKED never began: pending again as it was asked."""
        with db.write_transaction(conn):
            for row in conn.execute("SELECT id, kind, args FROM commands "
                                    "WHERE state = 'running'").fetchall():
                try:
                    args = json.loads(row["args"] or "{}")
                except ValueError:
                    args = {}
                if isinstance(args, dict) and args.get(PARKED):
                    CommandRunner._put_back(conn, row["id"], _unparked(args))
                elif isinstance(args, dict) and can_run_again(row["kind"], args):
                    conn.execute("UPDATE commands SET state = 'pending', args = ? WHERE id = ?",
                                 (json.dumps({**args, RESUMED: True}), row["id"]))
                else:
                    conn.execute("UPDATE commands SET state = 'failed', result = ?, "
                                 "done_at = ? WHERE id = ?",
                                 (INTERRUPTED, time.time(), row["id"]))

    @staticmethod
    def _claim(conn, skipped=(), parking=()):
        """(id, kind, args, parked) of the first pending row not of a kind in `skipped`, now
        `running`; one of a kind in `parking` waits apart, marked PARKED in the same
        transaction (module header). Its args come without the mark."""
        with db.write_transaction(conn):
            row = conn.execute("SELECT id, kind, args FROM commands WHERE state = 'pending' "
                               f"AND kind NOT IN ({', '.join('?' * len(skipped))}) "
                               "ORDER BY id LIMIT 1", tuple(skipped)).fetchone()
            if row is None:
                return None
            asked = args = stored = json.loads(row["args"] or "{}")
            parked = row["kind"] in parking
            if isinstance(asked, dict):
                args = _unparked(asked)
                stored = {**args, PARKED: True} if parked else args
            conn.execute("UPDATE commands SET state = 'running' WHERE id = ?", (row["id"],))
            if stored != asked:
                conn.execute("UPDATE commands SET args = ? WHERE id = ?",
                             (json.dumps(stored), row["id"]))
        return row["id"], row["kind"], args, parked

    @staticmethod
    def _unpark(conn, command_id, args):
        """The row waited apart and is carried out now: its PARKED mark goes."""
        conn.execute("UPDATE commands SET args = ? WHERE id = ? AND state = 'running'",
                     (json.dumps(args), command_id))

    @staticmethod
    def _put_back(conn, command_id, args=None):
        """Pending again, never begun; with `args` (without the PARKED mark) when it waited
        apart."""
        if args is None:
            conn.execute("UPDATE commands SET state = 'pending' WHERE id = ? "
                         "AND state = 'running'", (command_id,))
        else:
            conn.execute("UPDATE commands SET state = 'pending', args = ? WHERE id = ? "
                         "AND state = 'running'", (json.dumps(args), command_id))

    @staticmethod
    def _finish(conn, command_id, state, result):
        conn.execute("UPDATE commands SET state = ?, result = ?, done_at = ? WHERE id = ?",
                     (state, result, time.time(), command_id))


def _unparked(args: dict) -> dict:
    return {key: value for key, value in args.items() if key != PARKED}
