"""Queue File Save: copies of accepted messages' queue files for support (SPEC §3 Diagnostics
`diagnostics.queue_file_save`; guide §3 "Configuring queue file save and SMTP conversation
logging").

What it owns
    diagnostics/queuefiles/<queue id>.eml             the message as spooled: as received (with
                                                      our Received field), before any edit
    diagnostics/queuefiles/<queue id>.envelope.json   its envelope as spooled
    diagnostics/queuefiles/.pending/<queue id>.*      on_error: the same pair, waiting for the
                                                      message's fate
    Queue ids sort by arrival, so a listing of queuefiles/ is oldest first; the queue id ties
    a pair to the message's events.

Modes (the settings snapshot a message is first taken up with decides, so a change applies
to the next message, and a message keeps the mode it started with to its end)
    off       nothing.
    all       the pair of every accepted message, when the queue manager first takes it up.
    on_error  the pair is put aside when the queue manager first takes the message up, and
              kept only when its processing or delivery ends in an error: a scan error
              finding (scan.unprocessable, whatever it asks for; a pipeline hook), a crash
              or worker timeout (so every hold by the crash limit), an unexpected error
              handling it, a recipient failed for good (bounced) or given up after
              delivery.retry_days, its queue entry set aside in corrupt/ (the queue
              manager's `_left_for_corrupt`). Any other end — every recipient delivered;
              dropped, held or quarantined by policy — discards it (`done`).

Design: hard links, then a copy on error
    The copy must be the original, yet the pipeline edits the message (disclaimer, deleted
    attachments), and on_error learns that a copy is wanted only at a bounce, perhaps days
    later. shared/spool.py never writes a file in place: every change is a new file renamed
    over the old one (its rule 2). So a hard link made before the pipeline runs stays the
    original whatever the spool does next, at the cost of a directory entry: the mail's own
    path copies no bytes, and the link takes no space until the spool replaces or deletes
    its own name. "all" links the pair straight into place. on_error links it into
    .pending/; an error copies it into place as new files, so that its age — which
    logging.retention_days counts by modification time (shared/retention.py) — runs from
    the error and not from an arrival days before. Where a link cannot be made (the
    diagnostics directory on another file system) the pair is copied.

Rules
    1. The mail never waits for a copy's problems nor fails by them: every call here catches
       its own errors. A copy not kept writes one SCAN_ERROR event of rule
       diagnostics.queue_file_save (no queue id: the message itself is fine), and no further
       one for the same problem until a copy is kept again — a full directory would
       otherwise write one per message (the central quarantine's rule 5 does the same).
    2. No copy while the diagnostics directory's file system is low (shared/disk.py
       LOW_DISK_FRACTION, as the virus quarantine): support's copies must not take the space
       SMTP needs to accept mail at all.
    3. Files 0600 in directories 0700 (the data home's private modes). Nothing reads a copy
       but a person: it is never scanned or delivered.
    4. Mail Mailmoat made (bounces, notices, alerts) was not accepted and gets no copy.
    5. Names starting with "." are work in progress, which the retention purge leaves alone.
       At the next start (`recover`) a pending pair whose message is in fast/ or slow/ waits
       on; one whose message is in corrupt/ and in no other queue is saved as `error` would
       have saved it (a kill -9 came between the set-aside and the copy: the set-aside is the
       message's end, and nothing would ask for the copy again); any other is removed (the
       core stopped between the message's end and the discard).
    6. Blocking file work goes through trio.to_thread, except `done`'s unlinks, which cost
       less than the thread hop (as QueueManager._delete's).
    7. A stop does not cut `error` short: the copy is made in a shielded scope once the id
       has left the pairs that wait. The message may be in corrupt/ already (a stop during
       the look at start, review22c R1), where nothing asks for the copy again; before, the
       stop raised at the thread hop, the pair stayed in .pending/ and the next start
       removed it. A stop waits for a copy whose thread has started anyway; the shield adds
       at most one copy per message ending in an error at that moment. Rule 5 covers the
       kill -9 that no shield stops. The shield waits for a thread no longer than
       STOP_SAVE_SECONDS (a stop must end while the threads hang on a disk; review23b D1):
       the pair then stays in .pending/, which rule 5 saves at the next start when the
       message was set aside, and removes otherwise.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import trio

from shared.disk import LOW_DISK_FRACTION, disk_free_fraction
from shared.events import Action
from shared.spool import (CORRUPT, DIR_MODE, ENVELOPE_FILE, FILE_MODE, MESSAGE_QUEUES,
                          Envelope, Spool)

__all__ = ["QueueFileSave", "NoQueueFileSave", "QUEUE_FILES_DIR", "PENDING_DIR",
           "MESSAGE_SUFFIX", "ENVELOPE_SUFFIX", "SETTING"]

SETTING = "diagnostics.queue_file_save"
QUEUE_FILES_DIR = "queuefiles"          # under the data home's diagnostics/
PENDING_DIR = ".pending"                # under QUEUE_FILES_DIR (rule 5)
MESSAGE_SUFFIX = ".eml"
ENVELOPE_SUFFIX = ".envelope.json"
PENDING_QUEUES = ("fast", "slow")       # where a message with a pending pair can be (rule 5)
COPY_BUFFER_OCTETS = 1 << 20
STOP_SAVE_SECONDS = 10                  # rule 7
TEMPORARY_SUFFIX = ".tmp"               # a copy being written, under a hidden name (rule 5)
# a link cannot be made here: copy instead
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}

Problem = tuple[str, str]               # (kind, text): one event per kind in a row (rule 1)


class QueueFileSave:
    """The queue manager's (and the pipeline's, as a hook) side of Queue File Save."""

    def __init__(self, diagnostics: Path, spool: Spool, events, *,
                 disk_free: Callable[[Path], float] = disk_free_fraction) -> None:
        """`diagnostics`: the data home's diagnostics directory; `disk_free`: the free
        fraction of a path's file system (rule 2)."""
        self.directory = Path(diagnostics) / QUEUE_FILES_DIR
        self.pending_dir = self.directory / PENDING_DIR
        self.spool = spool
        self.events = events
        self.disk_free = disk_free
        self._pending: set[str] = set()          # ids with a pair in .pending/
        self._problem: str | None = None         # kind of the last problem recorded

    # --- the queue manager's calls ------------------------------------------------------
    async def keep(self, envelope: Envelope, settings: Mapping) -> None:
        """The queue manager takes up a message from fast/ before the pipeline runs: keep
        or put aside its pair as `settings` says. Never raises."""
        mode = settings.get(SETTING, "off")
        if mode == "off" or envelope.is_generated:
            return
        queue_id = envelope.queue_id
        pending = mode == "on_error"
        placed, problem = await trio.to_thread.run_sync(self._keep, queue_id, pending)
        if placed and pending:
            self._pending.add(queue_id)
        self._said(queue_id, problem)

    async def error(self, queue_id: str) -> None:
        """The message's processing or delivery ended in an error: keep its pending pair.
        Never raises; nothing to do unless it has one."""
        if queue_id not in self._pending:
            return
        self._pending.discard(queue_id)
        # rule 7: shielded, but no longer than STOP_SAVE_SECONDS waiting for a thread (a
        # stop must end on a hung disk); a copy not made waits in .pending/ for the next
        # start, which saves it (rule 5)
        with trio.move_on_after(STOP_SAVE_SECONDS, shield=True):
            self._said(queue_id, await trio.to_thread.run_sync(self._save, queue_id))

    def done(self, queue_id: str) -> None:
        """The message ended without an error: discard its pending pair. Never raises."""
        if queue_id not in self._pending:
            return
        self._pending.discard(queue_id)
        try:
            for path in _pair(self.pending_dir, queue_id):
                path.unlink(missing_ok=True)
        except OSError as exc:      # left for the next start's recover()
            self._said(queue_id, _os_problem("not discarded", exc))

    def recover(self) -> None:
        """At start, in a thread, before the queue manager runs: the pending pairs of
        messages still in fast/ or slow/ wait on, those of messages set aside in corrupt/
        are kept as errors, the others are removed (rule 5), as are half copies a stop left
        (`_copy`). Never raises: the core starts whatever the diagnostics directory
        holds."""
        set_aside = functools.cache(self._set_aside_ids)    # listed when first needed
        for folder in (self.directory, self.pending_dir):
            try:
                names = os.listdir(folder)
            except OSError:     # none yet, or not a folder: the first copy says so (rule 1)
                continue
            for name in names:
                if name.startswith("."):
                    if name.endswith(TEMPORARY_SUFFIX):
                        _remove(folder / name)
                elif folder == self.pending_dir:
                    self._recover_pending(name, set_aside)

    def _recover_pending(self, name: str, set_aside: Callable[[], set[str]]) -> None:
        queue_id = name.split(".", 1)[0]
        try:
            queued = any(self.spool.message_path(queue, queue_id).exists()
                         for queue in PENDING_QUEUES)
        except ValueError:      # not a queue id: not ours
            return
        if queued:
            self._pending.add(queue_id)
        elif (queue_id in set_aside()
              and not any(self.spool.message_path(queue, queue_id).exists()
                          for queue in MESSAGE_QUEUES if queue not in PENDING_QUEUES)
              and all(path.exists() for path in _pair(self.pending_dir, queue_id))):
            self._said(queue_id, self._save(queue_id))      # removes the pair
        else:
            _remove(self.pending_dir / name)

    def _set_aside_ids(self) -> set[str]:
        """The queue ids of the entries in corrupt/ (<queue id>, or <queue id>.N when it
        had one of that name: shared/spool.py `set_aside`)."""
        try:
            names = os.listdir(self.spool.root / CORRUPT)
        except OSError:
            return set()
        return {name.split(".", 1)[0] for name in names if not name.startswith(".")}

    # --- the pipeline hook (core/pipeline/service.py FilteringPipeline.hooks) -----------
    def worker_settings(self) -> dict:
        return {}

    async def after_scan(self, envelope: Envelope, outcome, message_path: Path,
                         settings: Mapping) -> None:
        """A scan error finding is an error whatever scan.unprocessable does next."""
        if any(finding.event == Action.SCAN_ERROR for finding in outcome.findings):
            await self.error(envelope.queue_id)

    # --- in a thread --------------------------------------------------------------------
    def _keep(self, queue_id: str, pending: bool) -> tuple[bool, Problem | None]:
        """(pair placed, problem)."""
        message = self.spool.message_path("fast", queue_id)
        target = self.pending_dir if pending else self.directory
        try:
            self._make_dirs(target)
            if _pair(self.directory, queue_id)[0].exists():   # kept before (reprocessed)
                return False, None
            if (low := self._low_disk()) is not None:
                return False, low
            return self._put((message, message.with_name(ENVELOPE_FILE)), target, queue_id,
                             link=True), None
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not message.exists():
                return False, None  # gone from fast/ meanwhile: nothing to keep
            return False, _os_problem("not kept", exc)

    def _save(self, queue_id: str) -> Problem | None:
        sources = _pair(self.pending_dir, queue_id)
        try:
            self._make_dirs(self.directory)
            if (low := self._low_disk()) is not None:
                return low
            self._put(sources, self.directory, queue_id, link=False)
            return None
        except OSError as exc:
            return _os_problem("not kept", exc)
        finally:
            for path in sources:
                _remove(path)

    def _make_dirs(self, target: Path) -> None:
        """diagnostics/ too: an administrator may have moved it away meanwhile."""
        for folder in dict.fromkeys((self.directory.parent, self.directory, target)):
            folder.mkdir(mode=DIR_MODE, exist_ok=True)

    def _low_disk(self) -> Problem | None:
        free = self.disk_free(self.directory.parent)
        if free >= LOW_DISK_FRACTION:
            return None
        return ("low_disk", f"the diagnostics directory's file system has {free:.1%} free, "
                            f"under {LOW_DISK_FRACTION:.0%}")

    def _put(self, sources: tuple[Path, Path], directory: Path, queue_id: str, *,
             link: bool) -> bool:
        """`sources` (message, envelope) as <queue id>.eml and .envelope.json in
        `directory`: hard links with `link` (copies where the file system makes none), new
        files without. False when the pair is there already; nothing is left half made."""
        made: list[Path] = []
        try:
            for source, target in zip(sources, _pair(directory, queue_id)):
                if link:
                    _link(source, target)
                else:
                    _copy(source, target)
                made.append(target)
        except FileExistsError:
            if not made:
                return False
            raise
        except BaseException:
            for target in made:
                target.unlink(missing_ok=True)
            raise
        return True

    # --- events (rule 1) ----------------------------------------------------------------
    def _said(self, queue_id: str, problem: Problem | None) -> None:
        if problem is None:
            self._problem = None
            return
        kind, text = problem
        if kind == self._problem:
            return
        self._problem = kind
        self.events.record(Action.SCAN_ERROR, rule=SETTING,
                           result="skipped_low_disk" if kind == "low_disk" else "failed",
                           info=f"queue files of {queue_id} not saved in {self.directory}: "
                                f"{text}; the message goes on (said once until a copy is "
                                f"saved again)",
                           data={"copy_of": queue_id})


class NoQueueFileSave:
    """What a queue manager built without a diagnostics directory holds: nothing is kept."""

    async def keep(self, envelope: Envelope, settings: Mapping) -> None:
        return None

    async def error(self, queue_id: str) -> None:
        return None

    def done(self, queue_id: str) -> None:
        return None


def _pair(directory: Path, queue_id: str) -> tuple[Path, Path]:
    return directory / (queue_id + MESSAGE_SUFFIX), directory / (queue_id + ENVELOPE_SUFFIX)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        _copy(source, target)


def _copy(source: Path, target: Path) -> None:
    """A new file `target` (FILE_MODE) holding `source`, through a hidden temporary name
    (rule 5), so that no half copy ever has the final name."""
    temporary = target.with_name(f".{target.name}{TEMPORARY_SUFFIX}")
    with open(source, "rb") as reader:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as writer:
                shutil.copyfileobj(reader, writer, COPY_BUFFER_OCTETS)
            if target.exists():
                raise FileExistsError(errno.EEXIST, "exists", str(target))
            os.rename(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass                        # tried again at the next start


def _os_problem(what: str, exc: OSError) -> Problem:
    return (f"{what}:{type(exc).__name__}:{exc.errno}",
            f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else ""))
