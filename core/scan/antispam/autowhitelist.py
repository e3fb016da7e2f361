"""The auto-generated whitelist, core side (SPEC §3 whitelist.auto.*; guide §5 "Activating
and managing an auto-generated whitelist").

What it owns
    `AutoWhitelist` — the domains of outbound recipients that are not local (routing.local),
    with a frequency count, kept in memory and written to the `auto_whitelist` table
    (migration 0003) by its own task: the core is that table's only writer (ARCHITECTURE
    invariant 4); the console reads it and asks for deletions with the command
    "whitelist.auto.delete" (moves to the custom whitelist or the exclusion list are
    settings the console writes itself, then the same command removes the entries).
    `AutoWhitelistPipeline` wraps the filtering pipeline: before a message is scanned it
    marks the envelope `meta["auto_whitelisted"]` (read by core/pipeline/checks/whitelist.py
    in the worker); after the scan it marks whether the message may teach the list
    (`meta[TEACHES]`). The queue manager calls `note_delivered` with the recipients each
    delivery attempt delivered to.

Rules
    1. Only while `whitelist.auto.enabled`, and only from recipients the next hop accepted
       (one refused or still deferred — a mistyped domain, a forged one — teaches nothing),
       of a message that
       - the scan let through unchanged in destination (a dropped, held, quarantined or
         forwarded message teaches nothing) and no spam check caught (spam a compromised
         host sends out, delivered marked, must not make its recipients' domains trusted
         senders);
       - a person sent: not mail Mailmoat generates, not a bounce (null reverse path, or
         from MAILER-DAEMON@ or postmaster@) and not an automatic response (an RFC 3834
         Auto-Submitted field other than "no", Precedence: auto_reply, X-Autoreply or
         X-Autorespond) relayed from inside — bounces and vacation replies go to whatever address spam forged, and
         would whitelist exactly the domains spammers forge.
       Each domain counts once per message, however many attempts deliver to it.
    2. A domain in `whitelist.auto.exclusions` (or under one) is not added and its count does
       not grow (the guide); excluded entries do not whitelist. Exclusions are read when the
       recipient is delivered, from the settings in force then.
    3. At most MAX_ENTRIES (2000) entries; adding one to a full list first removes the
       EVICT_COUNT (50) least frequent, ties: the oldest first seen, then by name.
    4. Writes are batched: dirty entries and deletions are flushed every FLUSH_SECONDS in a
       thread, never on the event loop. A deletion the console asked for is written before
       its command reports it done: the administrator's action survives a crash.
       A full disk, or the database locked past the busy timeout by another program
       (shared/busy.py), keeps the changes for the next flush (a deletion's command
       waits for it); neither stops the core.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping

import trio

from core.scan.antispam.lists import address_domain, is_excluded
from core.smtp.policy import is_local_domain
from shared import db
from shared.busy import BusyNotice, is_busy
from shared.disk import is_out_of_space

__all__ = ["AutoWhitelist", "AutoWhitelistMirror", "AutoWhitelistPipeline", "MAX_ENTRIES",
           "EVICT_COUNT", "load_entries"]

MAX_ENTRIES = 2000      # guide §5: "a maximum of 2000 entries"
EVICT_COUNT = 50        # guide §5: "When the maximum number of entries is exceeded, it removes the top 50"
FLUSH_SECONDS = 1.0
MIRROR_RELOAD_SECONDS = 2.0
TEACHES = "auto_whitelist_teaches"      # envelope meta: rule 1 holds for the message
COUNTED = "auto_whitelist_counted"      # envelope meta: the domains it already counted


def load_entries(conn) -> dict[str, list]:
    return {row["domain"]: [row["count"], row["first_seen"], row["last_seen"]]
            for row in conn.execute("SELECT domain, count, first_seen, last_seen "
                                    "FROM auto_whitelist")}


def _is_local(domain: str, settings: Mapping) -> bool:
    return is_local_domain(domain, settings)


class AutoWhitelist:
    def __init__(self, db_path, settings: Callable[[], Mapping], clock,
                 on_change: Callable[[int], None] | None = None):
        self.db_path = db_path
        self.settings = settings
        self.clock = clock
        self.on_change = on_change
        self.entries: dict[str, list] = {}        # domain -> [count, first_seen, last_seen]
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        self._conn = None                         # the writer's, while `run` runs
        self._writing = trio.Lock()               # one flush at a time on that connection
        self.busy = BusyNotice("writing the auto-generated whitelist")

    def load(self) -> None:
        conn = db.connect(self.db_path)
        try:
            self.entries = load_entries(conn)
        finally:
            conn.close()
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(len(self.entries))

    # --- questions ---------------------------------------------------------------------
    def contains(self, domain: str, settings: Mapping | None = None) -> bool:
        settings = settings if settings is not None else self.settings()
        domain = domain.lower().rstrip(".")
        return bool(domain) and domain in self.entries \
            and not is_excluded(domain, settings["whitelist.auto.exclusions"])

    # --- changes -----------------------------------------------------------------------
    def note_delivered(self, envelope, addresses: list[str]) -> None:
        """The queue manager's delivery hook: `addresses` of `envelope` were delivered."""
        if not envelope.meta.get(TEACHES):
            return
        counted = set(envelope.meta.get(COUNTED) or ())
        fresh = [a for a in addresses if address_domain(a) not in counted]
        if fresh:
            self.note_outbound(fresh)
            envelope.meta[COUNTED] = sorted(counted | {address_domain(a) for a in fresh})

    def note_outbound(self, recipients, settings: Mapping | None = None) -> None:
        """Rules 2-3 for recipients delivered to (each domain once)."""
        settings = settings if settings is not None else self.settings()
        if not settings["whitelist.auto.enabled"]:
            return
        now = self.clock.now()
        changed = False
        for domain in {address_domain(r) for r in recipients}:
            # an address literal ([192.0.2.7]) names a host, not a domain to trust
            if not domain or domain.startswith("[") or _is_local(domain, settings) \
                    or is_excluded(domain, settings["whitelist.auto.exclusions"]):
                continue
            entry = self.entries.get(domain)
            if entry is None:
                if len(self.entries) >= MAX_ENTRIES:
                    self._evict()
                self.entries[domain] = [1, now, now]
                changed = True
            else:
                entry[0] += 1
                entry[2] = now
            # a domain deleted and added again before the flush stays in _deleted: the write
            # deletes before it inserts, so the row starts again with this first_seen
            self._dirty.add(domain)
        if changed:
            self._changed()

    def _evict(self) -> None:
        # ties of count and first seen (domains one message taught) by name, so which go
        # does not depend on the order they were learned in (tester27b D1)
        victims = sorted(self.entries.items(),
                         key=lambda item: (item[1][0], item[1][1], item[0]))
        for domain, _ in victims[:EVICT_COUNT]:
            del self.entries[domain]
            self._dirty.discard(domain)
            self._deleted.add(domain)

    def delete(self, domains) -> int:
        removed = 0
        for domain in domains:
            domain = str(domain).lower().rstrip(".")
            if self.entries.pop(domain, None) is not None:
                removed += 1
                self._dirty.discard(domain)
                self._deleted.add(domain)
        if removed:
            self._changed()
        return removed

    # --- the writer --------------------------------------------------------------------
    def _write(self, conn, upserts: list[tuple], deletions: list[str]) -> None:
        with db.write_transaction(conn):
            conn.executemany("DELETE FROM auto_whitelist WHERE domain = ?",
                             [(d,) for d in deletions])
            conn.executemany(
                "INSERT INTO auto_whitelist (domain, count, first_seen, last_seen) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(domain) DO UPDATE SET count = excluded.count,"
                " last_seen = excluded.last_seen", upserts)

    async def flush(self, conn) -> None:
        async with self._writing:
            if not self._dirty and not self._deleted:
                return
            upserts = [(d, *self.entries[d]) for d in self._dirty if d in self.entries]
            deletions = list(self._deleted)
            self._dirty, self._deleted = set(), set()
            try:
                await trio.to_thread.run_sync(self._write, conn, upserts, deletions)
            except BaseException:       # not written: the next flush writes them again
                self._dirty.update(d for d, *_ in upserts)
                self._deleted.update(deletions)
                raise

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(self.load)
        conn = await trio.to_thread.run_sync(db.connect, self.db_path)
        self._conn = conn
        task_status.started()
        try:
            while True:
                await trio.sleep(FLUSH_SECONDS)
                await self._flush_unless_full(conn)
        finally:
            with trio.CancelScope(shield=True):
                await self._flush_unless_full(conn)
                self._conn = None
                await trio.to_thread.run_sync(conn.close)

    async def _flush_unless_full(self, conn) -> None:
        """A full disk (shared.disk) or a locked database (shared.busy) keeps the changes
        for the next flush; at a stop they are lost, as the counts of a cache may be."""
        try:
            await self.flush(conn)
        except sqlite3.Error as exc:
            if is_busy(exc):
                self.busy.locked(exc)
                return
            if not is_out_of_space(exc):
                raise
            return
        self.busy.done()

    async def delete_command(self, args: dict) -> str:
        """The Command.WHITELIST_AUTO_DELETE command: {"domains": [...]}; written before it
        reports done (rule 4), waiting for a locked database (FLUSH_SECONDS a try)."""
        count = self.delete(args.get("domains") or ())
        while self._conn is not None:
            try:
                await self.flush(self._conn)
                break
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                self.busy.locked(exc)
            await trio.sleep(FLUSH_SECONDS)
        return f"{count} auto-generated whitelist entr{'y' if count == 1 else 'ies'} removed"


class AutoWhitelistMirror(AutoWhitelist):
    """A read-only copy of the list for an SMTP listener process, whose reject at MAIL FROM
    (rbl.action reject) asks the same question as the core: reloaded from the table the
    core writes every MIRROR_RELOAD_SECONDS while the list is enabled, so a domain the core
    learns whitelists there within a few seconds. Never writes (invariant 4)."""

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if self.settings()["whitelist.auto.enabled"]:
                try:
                    await trio.to_thread.run_sync(self.load)
                except sqlite3.Error:       # busy or locked for long: keep the last copy
                    pass
            await trio.sleep(MIRROR_RELOAD_SECONDS)


def _is_daemon(sender: str) -> bool:
    """The null reverse path, or a mail system's own address (MAILER-DAEMON@, postmaster@
    as some servers sign their bounces): a bounce, whatever its fields say."""
    local = sender.rpartition("@")[0].lower() if "@" in sender else sender.lower()
    return not sender or local in ("mailer-daemon", "postmaster")


class AutoWhitelistPipeline:
    """Wraps the filtering pipeline (the queue manager's seam, core/pipeline/__init__.py)."""

    def __init__(self, inner, whitelist: AutoWhitelist):
        self.inner = inner
        self.whitelist = whitelist

    def __getattr__(self, name):          # notifier and the rest stay the inner pipeline's
        return getattr(self.inner, name)

    async def process(self, queue_id, envelope, message_path, settings):
        if settings["whitelist.auto.enabled"] and not envelope.is_generated:
            envelope.meta["auto_whitelisted"] = self.whitelist.contains(
                address_domain(envelope.sender), settings)
        result = await self.inner.process(queue_id, envelope, message_path, settings)
        if (result.disposition == "deliver" and not result.spam and not result.auto_submitted
                and not _is_daemon(envelope.sender) and not envelope.is_generated):  # rule 1
            envelope.meta[TEACHES] = True
        else:
            envelope.meta.pop(TEACHES, None)
        return result
