"""The on-disk queue format: where a message lives and how it changes state.

Owns the byte layout of the spool and nothing else. The queue manager in
``core/spool`` decides *when* a message moves; this module says *how*
(Postfix's ``mail_queue.c`` "encapsulates access to the mail queue hierarchy").
Plain synchronous code: the core calls it through ``trio.to_thread``.

Layout under the spool root (``<home>/spool``)::

    incoming/ fast/ slow/ hold/ quarantine/spam/ quarantine/virus/ corrupt/
    <queue>/<id>/message         raw RFC 5322 bytes as received (Received header included)
    <queue>/<id>/envelope.json   the Envelope below, as JSON
    <queue>/.trash-<id>/         a message being deleted (removed by recover())

Rules:
1. One message = one directory. A state change (fast -> slow, slow -> hold, ...)
   is ONE ``os.rename`` of that directory within the spool file system, then an
   fsync of the destination and the source parent directories.
2. Every write is: write temp -> flush -> fsync(file) -> rename -> fsync(dir).
   Acceptance (ARCHITECTURE invariant 1): ``IncomingMessage.prepare`` fsyncs
   message, envelope and message directory; ``Spool.commit`` renames
   ``incoming/<id>`` into its queue and fsyncs both directories. The SMTP 250
   may be sent only after ``commit`` returns. Several messages finishing at
   once share one ``commit`` and so one pair of directory fsyncs.
3. Anything in ``incoming/`` was never acknowledged: ``recover`` removes it.
4. Envelope updates are atomic rewrites (``envelope.json.tmp`` then rename), and
   JSON keys this version does not know are written back unchanged.
5. Directories 0o700, files 0o600: the data home is the mailmoat user's only.
6. An entry is whole when its envelope reads, names it, and its message file has
   the size the envelope gives (``check_message``). ``recover`` at start (or,
   for a queue it is told not to check, ``recover_entry`` one entry at a time
   afterwards) and ``read_entry``, which the queue manager takes a message up
   with, find those that are not; ``set_aside`` moves them to ``corrupt/``, the entry untouched, and
   notes beside it (ORIGIN_PREFIX) the queue it came from and why it was set aside;
   ``recover`` removes a note whose entry has left corrupt/.
7. One id is in one queue. A copy of the spool taken while the core ran (a live
   backup) can hold one id in two, caught before and after a move: ``recover``
   keeps the copy in the queue the message reaches later in its life (LATER_RANK),
   deletes copies that are an earlier state of it, and sets aside any other.

Never: delete a message that is unreadable (it goes to ``corrupt/``), raise out
of ``recover``, hold a whole message in memory, read the wall clock except
through a ``clock`` parameter, or put a pid or host name into a queue id.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import json
import os
import random
import re
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from shared.disk import DiskSpace, disk_free_fraction, disk_space

INCOMING = "incoming"
CORRUPT = "corrupt"
CORRUPT_RULE = "spool.corrupt"   # the rule of the event for an entry set aside in corrupt/
DUPLICATE_RULE = "spool.duplicate"  # ... for an id found in two queues (rule 7)
# corrupt/.from-<name>: line 1 the queue the entry <name> was set aside from, line 2 (when
# known) why: what was wrong with it, or that it is a second copy (rule 7)
ORIGIN_PREFIX = ".from-"
SET_ASIDE_REASON_CHARS = 500     # the why, on one line and cut at this length
MESSAGE_QUEUES = ("fast", "slow", "hold", "quarantine/spam", "quarantine/virus")
QUEUES = (INCOMING, *MESSAGE_QUEUES, CORRUPT)
# Rule 7. The moves core/spool makes: fast -> slow, hold or quarantine/*; hold -> fast (a
# reprocess), and on from there. _REACHES[q]: the queues a message in q can be in later.
_REACHES = {"fast": {"slow", "hold", "quarantine/spam", "quarantine/virus"},
            "hold": {"fast", "slow", "quarantine/spam", "quarantine/virus"},
            "slow": set(), "quarantine/spam": set(), "quarantine/virus": set()}
# Of copies of one id, the one in the highest-ranked queue is kept. fast and hold reach each
# other: hold wins, since a backup that copies fast/ before hold/ (docs/operations.md) can
# only catch a move fast -> hold twice, and a held copy waits for a person, where a fast one
# would be scanned and perhaps delivered again. No move links slow and a quarantine, or the
# two quarantines: the quarantine's copy is kept (it goes nowhere) and the other set aside.
LATER_RANK = {"fast": 0, "hold": 1, "slow": 2, "quarantine/spam": 3, "quarantine/virus": 4}
MESSAGE_FILE = "message"
ENVELOPE_FILE = "envelope.json"
TMP_SUFFIX = ".tmp"
TRASH_PREFIX = ".trash-"
ENVELOPE_FORMAT = 1
COPY_CHUNK_OCTETS = 64 * 1024
DIR_MODE = 0o700
FILE_MODE = 0o600

# Failure-injection steps, in the order the accept path passes them; move() passes
# "before_move_rename" and the two dir-fsync steps, delete() "after_delete_rename".
STEPS = (
    "after_message_fsync",      # message file fsync'd and closed
    "after_envelope_fsync",     # envelope.json (.tmp when rewritten) fsync'd, not yet renamed
    "after_envelope_rename",    # a rewrite renamed over envelope.json, directory not yet fsync'd
    "after_batch_sync",         # commit(): messages prepared without sync made durable
    "before_commit_rename",     # once per message of a commit
    "after_commit_rename",
    "before_dir_fsync",         # commit and move: renames done, directories not yet fsync'd
    "after_dir_fsync",
    "before_move_rename",
    "after_delete_rename",      # in the trash, tree not yet removed
)
FailureInjector = Callable[[str], None]
"""Called with a step name; a test raises from it to simulate a crash there."""

RECIPIENT_STATUSES = ("pending", "delivered", "deferred", "failed")
BODY_TYPES = ("7BIT", "8BITMIME")
# meta key: the Subject as the SMTP listener read it at acceptance (events carry it)
SUBJECT_META = "subject"
# Recipient.extra key: the RFC 3463 status of its last attempt ("4.4.3"), for its DSN. Not
# "status", which is the Recipient field and would hide it in envelope.json (to_dict).
ENHANCED_STATUS = "enhanced_status"
# Recipient.extra key: delivery's note beside its last error (a backup MX's refusal:
# core/delivery/deliver.py RecipientResult.note), for the text part of its DSN, never its
# Diagnostic-Code (core/delivery/bounce.py rule 3). Absent when the last attempt had none.
DELIVERY_NOTE = "delivery_note"
_NAME_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,99}")  # no '/', never starts with '.'


class EnvelopeError(ValueError):
    """envelope.json is not valid JSON or not a valid envelope."""


# --- queue ids ---------------------------------------------------------------

# Crockford base32 in ascending ASCII order, so ids sort as the numbers they encode.
_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_CHARS = 12                 # 60 bits: 42 bits of milliseconds (until 2109) + 18 bits
_ID_LOW_BITS = 18
_id_lock = threading.Lock()
_id_last = 0


# Queue ids need uniqueness, not secrecy: a seeded PRNG instead of a getrandom(2) per id.
_id_random = random.Random(os.urandom(16))


def _forget_last_id() -> None:   # a forked worker must not count on from its parent's last id
    global _id_last
    _id_last = 0
    _id_random.seed(os.urandom(16))


os.register_at_fork(after_in_child=_forget_last_id)


def new_queue_id(clock_ns: Callable[[], int] = time.time_ns) -> str:
    """Return a new 12-character queue id: opaque, unique, sortable by time.

    Milliseconds since the epoch, then 18 bits that start random (top bit clear)
    and count up when ids share a millisecond. Within a process ids strictly
    increase, even if the clock steps back; across processes the random bits
    make a clash unlikely and ``open_incoming``'s exclusive mkdir makes it
    harmless (FileExistsError: take a new id). No pid or host is in it.
    """
    global _id_last
    value = (clock_ns() // 1_000_000) << _ID_LOW_BITS | _id_random.getrandbits(_ID_LOW_BITS - 1)
    with _id_lock:
        value = max(value, _id_last + 1)
        _id_last = value
    return "".join(_ID_ALPHABET[value >> 5 * i & 31] for i in reversed(range(_ID_CHARS)))


# --- envelope ----------------------------------------------------------------

_NONE, _NUMBER = type(None), (int, float)


class _Record:
    """JSON object <-> dataclass, type-checked, keeping unknown keys in ``extra``."""
    _TYPES: ClassVar[dict[str, tuple]]      # field -> accepted JSON types (bool is never an int)
    _CHOICES: ClassVar[dict[str, tuple]]    # field -> allowed values
    _FIELDS: ClassVar[tuple[tuple[str, bool], ...]]   # set by _fields()

    @classmethod
    def _fields(cls) -> tuple[tuple[str, bool], ...]:
        """(name, required) of every field but ``extra``, computed once per class: every
        accepted message is converted several times, and dataclasses.fields() is slow."""
        cached = cls.__dict__.get("_FIELDS")
        if cached is None:
            cached = tuple((f.name, f.default is dataclasses.MISSING
                            and f.default_factory is dataclasses.MISSING)
                           for f in dataclasses.fields(cls) if f.name != "extra")
            cls._FIELDS = cached
        return cached

    def to_dict(self) -> dict:
        return {**self.extra, **{name: getattr(self, name) for name, _ in self._fields()}}

    @classmethod
    def from_dict(cls, obj: Any) -> Any:
        """Raise EnvelopeError when *obj* does not fit the record."""
        if not isinstance(obj, dict):
            raise EnvelopeError(f"{cls.__name__} is not a JSON object")
        values = {}
        for name, required in cls._fields():
            if name not in obj:
                if required:
                    raise EnvelopeError(f"{cls.__name__}: missing {name!r}")
                continue
            value, types = obj[name], cls._TYPES[name]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise EnvelopeError(f"{cls.__name__}.{name}: wrong type {type(value).__name__}")
            if name in cls._CHOICES and value not in cls._CHOICES[name]:
                raise EnvelopeError(f"{cls.__name__}.{name}: unknown value {value!r}")
            values[name] = value
        extra = {k: v for k, v in obj.items()
                 if k not in cls._TYPES and k not in ("extra", "format")}
        return cls(**values, extra=extra)


@dataclass
class Recipient(_Record):
    """One envelope recipient and its own delivery state."""
    address: str
    status: str = "pending"        # one of RECIPIENT_STATUSES
    attempts: int = 0
    last_error: str | None = None
    next_hop: str | None = None
    extra: dict = field(default_factory=dict, repr=False)  # unknown keys, written back as read

    _TYPES = {"address": (str,), "status": (str,), "attempts": (int,),
              "last_error": (str, _NONE), "next_hop": (str, _NONE)}
    _CHOICES = {"status": RECIPIENT_STATUSES}


@dataclass
class Envelope(_Record):
    """Everything about a message except its bytes. Stored as envelope.json."""
    queue_id: str
    sender: str                      # "" is the null sender (bounces, notices)
    recipients: list[Recipient]
    received_at: float               # unix time from the caller's injectable clock
    client_ip: str = ""
    client_helo: str = ""
    connection_id: str = ""
    size: int = 0                    # octets of the message file; set by prepare()
    # The inodes of the message file and of the message directory when this envelope was
    # written (prepare, write_incoming, write_envelope), for Spool.check_message; None in
    # envelopes written before they were kept
    message_inode: int | None = None
    entry_inode: int | None = None
    body: str = "7BIT"               # one of BODY_TYPES
    smtputf8: bool = False
    attempts: int = 0                # delivery attempts of the whole message
    next_attempt_at: float | None = None
    first_deferral_notice_sent: bool = False
    crash_count: int = 0             # pipeline crashes; the queue manager holds at 3
    hold_reason: str | None = None
    is_generated: bool = False       # made by Mailmoat (alert, notice, bounce): not "accepted"
    is_bounce: bool = False
    skip_antispam: bool = False
    processed: bool = False          # the pipeline has run
    meta: dict = field(default_factory=dict)   # free space for later features; JSON values only
    extra: dict = field(default_factory=dict, repr=False)  # unknown keys, written back as read

    _TYPES = {
        "queue_id": (str,), "sender": (str,), "recipients": (list,), "received_at": _NUMBER,
        "client_ip": (str,), "client_helo": (str,), "connection_id": (str,), "size": (int,),
        "message_inode": (int, _NONE), "entry_inode": (int, _NONE),
        "body": (str,), "smtputf8": (bool,), "attempts": (int,),
        "next_attempt_at": (*_NUMBER, _NONE), "first_deferral_notice_sent": (bool,),
        "crash_count": (int,), "hold_reason": (str, _NONE), "is_generated": (bool,),
        "is_bounce": (bool,), "skip_antispam": (bool,), "processed": (bool,), "meta": (dict,)}
    _CHOICES = {"body": BODY_TYPES}

    @classmethod
    def new(cls, queue_id: str, sender: str, recipients: Iterable[str], *,
            clock: Callable[[], float] = time.time, **fields: Any) -> Envelope:
        """An envelope with every recipient pending, received now by *clock*."""
        return cls(queue_id=queue_id, sender=sender, received_at=clock(),
                   recipients=[Recipient(address) for address in recipients], **fields)

    def event_fields(self) -> dict:
        """The columns every event about this message carries (SPEC §6); the Subject is the
        one the SMTP listener read when it accepted the message (`subject`)."""
        return {"queue_id": self.queue_id, "sender": self.sender,
                "recipients": [r.address for r in self.recipients], "size": self.size,
                "client_ip": self.client_ip or None,
                "connection_id": self.connection_id or None, "subject": self.subject()}

    def subject(self) -> str | None:
        """The Subject the SMTP listener read when it accepted the message (meta
        SUBJECT_META), for events; None when it had none or the message was made here."""
        value = self.meta.get(SUBJECT_META)
        return value if isinstance(value, str) and value else None

    def to_dict(self) -> dict:
        recipients = [r.to_dict() for r in self.recipients]
        return {"format": ENVELOPE_FORMAT, **super().to_dict(), "recipients": recipients}

    def to_json(self) -> bytes:
        """One line of ASCII JSON: json's C encoder (indent would use the Python one, a
        visible cost per accepted message), and it can travel as a line of a report."""
        return json.dumps(self.to_dict(), separators=(",", ":")).encode("ascii")

    @classmethod
    def from_dict(cls, obj: Any) -> Envelope:
        envelope = super().from_dict(obj)
        envelope.recipients = [Recipient.from_dict(r) for r in envelope.recipients]
        return envelope

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        """Raise EnvelopeError when *data* is not JSON or not a valid envelope."""
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError) as exc:   # ValueError includes UnicodeDecodeError
            raise EnvelopeError(f"not JSON: {exc}") from None
        return cls.from_dict(obj)

    def copy(self) -> Envelope:
        return Envelope.from_json(self.to_json())


# --- file system helpers -----------------------------------------------------

def _remove_message_dir(path: str | Path) -> None:
    """A message directory holds plain files only; unlinking them by name costs a fraction
    of shutil.rmtree's per-call work, which the queue manager pays once per message. The
    usual two files go without listing the directory."""
    for name in (MESSAGE_FILE, ENVELOPE_FILE):
        try:
            os.unlink(os.path.join(path, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(path)
        return
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:
            raise
    path = Path(path)
    try:
        with os.scandir(path) as entries:
            names = [entry.name for entry in entries]
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(path / name)
        except IsADirectoryError:     # not made by this module, but never left behind
            shutil.rmtree(path / name)
        except FileNotFoundError:
            pass
    os.rmdir(path)


def _write_new(path: str | Path, chunks: list[bytes], sync: bool = False) -> int:
    """Create *path* (it must not exist) holding *chunks*, fsync'd with `sync`; returns
    the octets written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        total = sum(map(len, chunks))
        written = os.writev(fd, chunks) if chunks else 0
        if written < total:                       # a short write: finish piece by piece
            rest = memoryview(b"".join(chunks))[written:]
            while rest:
                rest = rest[os.write(fd, rest):]
        if sync:
            os.fsync(fd)
        return total
    finally:
        os.close(fd)


def _fsync_dir(path: str | os.PathLike) -> None:
    """Make the entries of directory *path* (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _damage(message: str | Path, envelope: Envelope, queue: str) -> str | None:
    """Spool.check_message's finding about the file *message* of an entry of *queue*
    (corrupt/: the queue it came from, or CORRUPT when unknown), or None."""
    status = os.stat(message)
    if envelope.message_inode is None or status.st_size == envelope.size:
        return None
    if (status.st_ino != envelope.message_inode and queue in ("fast", CORRUPT)
            and not envelope.processed and envelope.entry_inode in (
                None, os.stat(os.path.dirname(message)).st_ino)):
        return None     # perhaps rewritten by the pipeline just before a crash
    return f"the message file has {status.st_size} octets, its envelope says {envelope.size}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _load_syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2), or None where there is none (then each file is fsync'd)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.syncfs                   # ctypes releases the GIL around the call
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_SYNCFS = _load_syncfs()


def _syncfs(path: str | os.PathLike) -> None:
    """Make everything written on the file system of *path* durable (data, metadata and
    directory entries); OSError when the kernel reports a write-back error."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _SYNCFS(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(path))
    finally:
        os.close(fd)


@dataclass(frozen=True)
class PreparedMessage:
    """A message fully written in incoming/, ready for commit(); `synced` when its files
    and directory are already fsync'd (otherwise commit() makes them durable first).
    `envelope_json`: the envelope as written, for whoever reports the message onwards."""
    queue_id: str
    synced: bool = True
    envelope_json: bytes = b""


class IncomingMessage:
    """A message being received into ``incoming/<id>/``. Not thread-safe."""

    def __init__(self, spool: Spool, queue_id: str) -> None:
        self._spool = spool
        self.queue_id = queue_id
        self.directory = spool.message_path(INCOMING, queue_id).parent
        self.size = 0
        os.mkdir(self.directory, DIR_MODE)          # FileExistsError on an id clash
        try:
            fd = os.open(self.directory / MESSAGE_FILE,
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._state = "writing"                     # -> "prepared" | "aborted"

    def write(self, chunk: bytes) -> None:
        """Append *chunk* to the message file (buffered, not yet durable)."""
        if self._state != "writing":
            raise RuntimeError(f"write() on a message that is {self._state}")  # bug
        self._file.write(chunk)
        self.size += len(chunk)

    def prepare(self, envelope: Envelope, *, sync: bool = True) -> PreparedMessage:
        """Make message and envelope durable in incoming/; return the commit handle.

        With `sync` false the files are written and closed but not fsync'd: commit()
        makes a whole batch durable with one file-system sync instead (group commit).

        Sets ``envelope.size`` to the octets written (``message_inode`` to the file's
        inode). Raises ValueError when the
        envelope's queue_id is not this message's (bug) and OSError on I/O
        failure (e.g. ENOSPC); after any exception the caller calls ``abort()``.
        """
        if self._state != "writing":
            raise RuntimeError(f"prepare() on a message that is {self._state}")  # bug
        if envelope.queue_id != self.queue_id:
            raise ValueError(f"envelope is for {envelope.queue_id}, not {self.queue_id}")
        envelope.size = self.size
        envelope.message_inode = os.fstat(self._file.fileno()).st_ino
        envelope.entry_inode = os.stat(self.directory).st_ino
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        self._spool._step("after_message_fsync")
        # No temp file and rename here: nothing reads incoming/, and recover() removes
        # whatever is left in it, so the envelope is written in place (one rename fewer
        # per accepted message); the directory fsync makes both entries durable before
        # commit() renames the directory into its queue.
        envelope_json = envelope.to_json()
        _write_new(self.directory / ENVELOPE_FILE, [envelope_json], sync=sync)
        self._spool._step("after_envelope_fsync")
        if sync:
            _fsync_dir(self.directory)
        self._state = "prepared"
        return PreparedMessage(self.queue_id, synced=sync, envelope_json=envelope_json)

    def abort(self) -> None:
        """Close and remove what is still in incoming/; safe at any time and more than once
        (after a failed ``commit`` too: a message already renamed is not touched)."""
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:     # e.g. ENOSPC flushing the buffer: the bytes are discarded anyway
                pass
        self._state = "aborted"
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> IncomingMessage:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None and self._state == "writing":
            self.abort()


@dataclass
class RecoveryReport:
    """What recover() found and did; ``found`` is the whole queue state."""
    found: dict[str, list[str]] = field(default_factory=dict)   # queue -> sorted ids
    removed_incoming: list[str] = field(default_factory=list)
    corrupt: list[tuple[str, str, str]] = field(default_factory=list)  # (queue, name, reason)
    # ids that were in several queues (rule 7): (id, queue kept, Spool.resolve_copies's list)
    copies: list[tuple[str, str, list[tuple[str, str]]]] = field(default_factory=list)
    removed_tmp: int = 0
    removed_trash: int = 0
    errors: list[str] = field(default_factory=list)             # what could not be fixed


class Spool:
    """The spool at *root*; creates missing queue directories (0o700)."""

    def __init__(self, root: str | os.PathLike,
                 failure_injector: FailureInjector | None = None) -> None:
        self.root = Path(root)
        self._root = str(self.root)
        self._step: FailureInjector = failure_injector or (lambda step: None)
        for queue in (".", "quarantine", *QUEUES):
            path = self.root / queue
            if not path.is_dir():
                path.mkdir(DIR_MODE, parents=True)
                _fsync_dir(path.parent)
            if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
                path.chmod(DIR_MODE)

    # paths ------------------------------------------------------------------

    def message_path(self, queue: str, queue_id: str) -> Path:
        """Path of the message file; ValueError for an unknown queue or bad id."""
        return Path(os.path.join(self._dir_name(queue, queue_id), MESSAGE_FILE))

    def _dir(self, queue: str, queue_id: str) -> Path:
        return Path(self._dir_name(queue, queue_id))

    def _dir_name(self, queue: str, queue_id: str) -> str:
        """The message's directory as a string: the per-message paths (accept, commit,
        delete) skip pathlib, whose joins were a visible share of a listener's work."""
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}")
        if not _NAME_RE.fullmatch(queue_id):
            raise ValueError(f"invalid queue id {queue_id!r}")
        return os.path.join(self._root, queue, queue_id)

    def _not_incoming(self, queue: str) -> str:
        if queue == INCOMING:   # incoming/ entries are only reached through IncomingMessage
            raise ValueError("incoming/ is not a queue for this operation")
        return queue

    # accepting ----------------------------------------------------------------

    def open_incoming(self, queue_id: str) -> IncomingMessage:
        """Create ``incoming/<id>/`` with an empty message file.

        FileExistsError if the id is taken (pick a new one)."""
        return IncomingMessage(self, queue_id)

    def write_incoming(self, envelope: Envelope, chunks: Iterable[bytes]) -> PreparedMessage:
        """A whole message received in memory, written into ``incoming/<id>/`` in one go
        and prepared without sync (commit() makes it durable): the group committer's path,
        eight system calls per message where open_incoming/prepare take a dozen — in a
        worker thread each one is a GIL hand-over with the event loop. Sets
        ``envelope.size`` and ``message_inode``; on OSError nothing is left in incoming/."""
        directory = self._dir_name(INCOMING, envelope.queue_id)
        os.mkdir(directory, DIR_MODE)              # FileExistsError on an id clash
        try:
            chunks = list(chunks)
            message = os.path.join(directory, MESSAGE_FILE)
            envelope.size = _write_new(message, chunks)
            envelope.message_inode = os.stat(message).st_ino
            envelope.entry_inode = os.stat(directory).st_ino
            self._step("after_message_fsync")
            envelope_json = envelope.to_json()
            _write_new(os.path.join(directory, ENVELOPE_FILE), [envelope_json])
            self._step("after_envelope_fsync")
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return PreparedMessage(envelope.queue_id, synced=False, envelope_json=envelope_json)

    def discard_incoming(self, queue_id: str) -> None:
        """Remove ``incoming/<id>/`` if it is still there (its files are closed)."""
        shutil.rmtree(self._dir_name(INCOMING, queue_id), ignore_errors=True)

    def commit(self, prepared: Iterable[PreparedMessage], queue: str = "fast") -> None:
        """Move prepared messages into *queue* durably: renames, then two fsyncs.

        Messages prepared without `sync` are made durable first, all at once: one
        syncfs(2) of the spool's file system where the platform has it (one journal
        commit for the whole batch instead of three fsyncs per message), else an fsync
        of each of their files and directories.

        When this returns, every message is durable in *queue* (the SMTP 250 may
        go out). If it raises, messages already renamed stay there (a duplicate
        at worst); the rest stay in incoming/ and recover() removes them.
        """
        queue = self._not_incoming(queue)
        if queue == CORRUPT:
            raise ValueError("cannot commit into corrupt/")
        prepared = list(prepared)
        unsynced = [message.queue_id for message in prepared if not message.synced]
        if unsynced:
            self._make_durable(unsynced)
        for message in prepared:
            source = self._dir_name(INCOMING, message.queue_id)
            target = self._dir_name(queue, message.queue_id)
            self._step("before_commit_rename")
            os.rename(source, target)
            self._step("after_commit_rename")
        self._step("before_dir_fsync")
        _fsync_dir(os.path.join(self._root, queue))      # group commit: once for the whole batch
        _fsync_dir(os.path.join(self._root, INCOMING))
        self._step("after_dir_fsync")

    def _make_durable(self, incoming_ids: list[str]) -> None:
        if _SYNCFS is not None:
            _syncfs(self.root)
        else:
            for queue_id in incoming_ids:
                directory = self._dir(INCOMING, queue_id)
                for name in (MESSAGE_FILE, ENVELOPE_FILE):
                    fd = os.open(directory / name, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                _fsync_dir(directory)
        self._step("after_batch_sync")

    def copy_to(self, queue_id: str, src: str, dst_queue: str, new_id: str,
                envelope: Envelope | None = None) -> None:
        """Copy a message to *dst_queue* as *new_id* through incoming/ and commit.

        The envelope is *envelope* if given (for forward copies), else a copy of
        the source's; either way its queue_id becomes *new_id* (the argument is
        not modified). The source is untouched.
        """
        new_envelope = (envelope or self.read_envelope(src, queue_id)).copy()
        new_envelope.queue_id = new_id
        incoming = self.open_incoming(new_id)
        try:
            with self.open_message(src, queue_id) as source:
                while chunk := source.read(COPY_CHUNK_OCTETS):
                    incoming.write(chunk)
            self.commit([incoming.prepare(new_envelope)], dst_queue)
        except BaseException:
            incoming.abort()    # removes only what is still in incoming/
            raise

    # state changes --------------------------------------------------------------

    def move(self, queue_id: str, src: str, dst: str) -> None:
        """Atomically move a message between queues; durable on return.

        FileNotFoundError if it is not in *src*, FileExistsError if *dst* has it.
        """
        source = self._dir(self._not_incoming(src), queue_id)
        target = self._dir(self._not_incoming(dst), queue_id)
        if target.exists():
            raise FileExistsError(f"{dst}/{queue_id} exists")
        self._step("before_move_rename")
        os.rename(source, target)
        self._step("before_dir_fsync")
        _fsync_dir(target.parent)
        _fsync_dir(source.parent)
        self._step("after_dir_fsync")

    def read_envelope(self, queue: str, queue_id: str) -> Envelope:
        """FileNotFoundError if missing; EnvelopeError if unreadable or invalid."""
        return Envelope.from_json((self._dir(queue, queue_id) / ENVELOPE_FILE).read_bytes())

    def write_envelope(self, queue: str, envelope: Envelope) -> None:
        """Atomically replace the envelope of a message in *queue*; durable on return.
        Sets ``envelope.message_inode`` to the message file's as it is now: `size` is
        that file's size (the pipeline's rewrite replaces the file and sets the size);
        ``entry_inode`` to the directory's.

        FileNotFoundError if the message is not in *queue*."""
        directory = self._dir(self._not_incoming(queue), envelope.queue_id)
        if not directory.is_dir():
            raise FileNotFoundError(f"{queue}/{envelope.queue_id}")
        try:
            envelope.message_inode = os.stat(directory / MESSAGE_FILE).st_ino
        except FileNotFoundError:       # a damaged entry: check_message says so
            envelope.message_inode = None
        envelope.entry_inode = os.stat(directory).st_ino
        self._write_atomic(directory / ENVELOPE_FILE, envelope.to_json())

    def check_message(self, queue: str, envelope: Envelope) -> None:
        """Raise EnvelopeError when the message file is not of the size *envelope* gives
        (``size``) — truncated or emptied by storage trouble, a hand edit or a damaged
        backup (SMTP, copies and generated mail all record the octets of the file as
        written, Received field included). One file is not held to ``size``: that of a
        fast/ entry not yet processed which is no longer the file the envelope was written
        with (``message_inode``) in the same directory (``entry_inode``) — the pipeline's
        rewrite, renamed over the message and cut off by a crash before the envelope was
        written again; a good message is never set aside for it. A restored or copied
        entry has a new directory and is held to its size. An envelope with no
        ``message_inode`` (an older release's, or a hand repair's) is not size-checked.
        FileNotFoundError when the message file is gone. One stat, no read, when the size
        is right."""
        damage = _damage(self.message_path(queue, envelope.queue_id), envelope, queue)
        if damage is not None:
            raise EnvelopeError(damage)

    def read_entry(self, queue: str, queue_id: str) -> Envelope:
        """The envelope of a message about to be handled, checked against its message
        file (check_message). FileNotFoundError when the message is no longer in *queue*;
        EnvelopeError when its envelope is unreadable or invalid, its message file missing
        or damaged: an entry for corrupt/ (set_aside)."""
        envelope = self.read_envelope(queue, queue_id)
        if envelope.queue_id != queue_id:
            raise EnvelopeError(f"envelope is for {envelope.queue_id}")
        try:
            self.check_message(queue, envelope)
        except FileNotFoundError:
            raise EnvelopeError("message file missing") from None
        return envelope

    def open_message(self, queue: str, queue_id: str) -> BinaryIO:
        """The message file opened for binary reading (close it, or use ``with``)."""
        return open(self.message_path(queue, queue_id), "rb")

    def delete(self, queue: str, queue_id: str) -> None:
        """Remove a message: rename to a trash name, remove the tree.

        A crash leaves either the whole message in *queue* or a trash entry that
        recover() removes. The queue directory is not fsync'd: a delete lost to a power cut
        brings the message back, which at worst repeats a delivery (SPEC §4 allows
        duplicates, never loss) — Postfix does not sync its deletes either.
        FileNotFoundError if it is not in *queue*."""
        source = self._dir_name(self._not_incoming(queue), queue_id)
        trash = os.path.join(os.path.dirname(source), TRASH_PREFIX + queue_id)
        try:
            os.rename(source, trash)
        except OSError as exc:          # a trash entry left by a crash is in the way
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            _remove_message_dir(trash)
            os.rename(source, trash)
        self._step("after_delete_rename")
        _remove_message_dir(trash)

    def list(self, queue: str) -> Iterator[str]:
        """Ids of the messages in *queue*, sorted (so oldest first)."""
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}")
        return iter(sorted(n for n in os.listdir(self.root / queue) if _NAME_RE.fullmatch(n)))

    def disk_free_fraction(self) -> float:
        """Free fraction (0..1) of the spool file system (shared.disk)."""
        return disk_free_fraction(self.root)

    def disk_space(self) -> DiskSpace:
        """The spool file system's space (shared.disk)."""
        return disk_space(self.root)

    # startup ------------------------------------------------------------------------

    def recover(self, *, checked: Iterable[str] = MESSAGE_QUEUES) -> RecoveryReport:
        """Bring the spool to a consistent state at startup; never raises OSError.

        incoming/ is emptied (nothing there was acknowledged); trash entries are
        removed; in every message queue of *checked* (all of them unless said) temp
        envelopes are removed and an entry without a valid envelope.json (matching
        its id) and a message file of the size it gives (check_message) goes to
        corrupt/. The entries of a queue left out of *checked* are looked at one by
        one later, by `recover_entry` (the core does so for slow/ and hold/ once
        SMTP answers: reading 20,000 envelopes kept it silent for seconds), except
        those of an id in several queues, which rule 7 needs whole or set aside now.
        ``found`` lists every queue's ids afterwards, corrupt/ included.
        """
        report = RecoveryReport()
        checked = set(checked)
        for queue in (INCOMING, *MESSAGE_QUEUES, CORRUPT):
            try:
                self._recover_queue(queue, report, is_checked=queue in checked)
                _fsync_dir(self.root / queue)
            except OSError as exc:
                report.errors.append(f"{queue}: {exc}")
        self._recover_copies(report, checked)
        for queue in (*MESSAGE_QUEUES, CORRUPT):
            try:
                report.found[queue] = list(self.list(queue))
            except OSError as exc:
                report.found[queue] = []
                report.errors.append(f"{queue}: {exc}")
        return report

    def _recover_copies(self, report: RecoveryReport, checked: set[str]) -> None:
        """Rule 7 for every id in more than one message queue (after the damaged entries
        went to corrupt/, so that a whole copy is kept over a damaged one: the copies in
        a queue recover() did not check are checked here)."""
        where: dict[str, list[str]] = {}
        for queue in MESSAGE_QUEUES:
            try:
                for queue_id in self.list(queue):
                    where.setdefault(queue_id, []).append(queue)
            except OSError:
                pass        # the listing of found ids reports it
        for queue_id, queues in where.items():
            if len(queues) > 1:
                for queue in [q for q in queues if q not in checked]:
                    try:
                        if self._recover_entry(queue, queue_id, report)[1] is not None:
                            queues.remove(queue)
                    except OSError as exc:
                        report.errors.append(f"{queue}/{queue_id}: {exc}")
                if len(queues) < 2:
                    continue
                kept, done = self.resolve_copies(queue_id, queues)
                report.copies.append((queue_id, kept, done))

    def queues_holding(self, queue_id: str, besides: str) -> list[str]:
        """The message queues other than *besides* that hold an entry *queue_id*."""
        return [queue for queue in MESSAGE_QUEUES
                if queue != besides and os.path.lexists(self._dir_name(queue, queue_id))]

    def resolve_copies(self, queue_id: str, queues: Iterable[str]
                       ) -> tuple[str, list[tuple[str, str]]]:
        """Leave *queue_id* in one of *queues* (rule 7): the copy in the queue of highest
        LATER_RANK stays; a copy in a queue from which a message can reach that one is an
        earlier state of it and is deleted; any other goes to corrupt/. Returns the queue
        kept and, for each other copy, (its queue, what was done): "deleted",
        "corrupt/<name>" (set aside under that name) or "not removed: <error>". Never
        raises OSError; a copy gone meanwhile is left out."""
        queues = sorted(set(queues), key=LATER_RANK.__getitem__)
        kept, done = queues[-1], []
        for queue in queues[:-1]:
            try:
                if kept in _REACHES[queue]:
                    self.delete(queue, queue_id)
                    done.append((queue, "deleted"))
                else:
                    why = f"a second copy: the message is kept in {kept}"
                    done.append((queue, f"{CORRUPT}/{self.set_aside(queue, queue_id, why)}"))
            except FileNotFoundError:
                continue
            except OSError as exc:
                done.append((queue, f"not removed: {exc}"))
        return kept, done

    def _recover_queue(self, queue: str, report: RecoveryReport, *, is_checked: bool) -> None:
        directory = self.root / queue
        for name in sorted(os.listdir(directory)):
            path = directory / name
            try:
                if queue == INCOMING:   # never acknowledged: remove
                    _remove(path)
                    report.removed_incoming.append(name)
                    continue
                if name.startswith(TRASH_PREFIX):
                    _remove(path)
                    report.removed_trash += 1
                    continue
                if queue == CORRUPT:    # set aside for a person: never touched
                    if name.startswith(ORIGIN_PREFIX) and not os.path.lexists(
                            directory / name[len(ORIGIN_PREFIX):]):
                        path.unlink()   # its entry was moved back, or never came
                    continue
                if is_checked:
                    self._recover_entry(queue, name, report)
            except OSError as exc:
                report.errors.append(f"{queue}/{name}: {exc}")

    def recover_entry(self, queue: str, name: str) -> tuple[Envelope | None, str | None]:
        """What recover() does to one entry of a queue it did not check (the core, for
        slow/ and hold/ after its start): its temp envelope removed, and the entry set
        aside in corrupt/ when it is not whole. Returns (its envelope, None) for a whole
        one, (None, why) for one set aside, (None, None) for one gone meanwhile. OSError
        when it cannot be set aside (or the disk's own error)."""
        report = RecoveryReport()
        try:
            return self._recover_entry(queue, name, report)
        except FileNotFoundError:
            if os.path.lexists(self._dir_name(queue, name)):
                raise
            return None, None

    def _recover_entry(self, queue: str, name: str, report: RecoveryReport
                       ) -> tuple[Envelope | None, str | None]:
        tmp = self.root / queue / name / (ENVELOPE_FILE + TMP_SUFFIX)
        if _NAME_RE.fullmatch(name) and tmp.is_file():
            tmp.unlink()
            report.removed_tmp += 1
        envelope, reason = self._examine(queue, name)
        if reason is not None:
            self.set_aside(queue, name, reason)
            report.corrupt.append((queue, name, reason))
        return envelope, reason

    def problem(self, queue: str, name: str) -> str | None:
        """None for a well-formed message directory, else why it is not one (recover(),
        and `mailmoat queue list corrupt` for what it set aside)."""
        return self._examine(queue, name)[1]

    def _examine(self, queue: str, name: str) -> tuple[Envelope | None, str | None]:
        """(the envelope, None) for a well-formed message directory, else (None, why)."""
        if not _NAME_RE.fullmatch(name) or not (self.root / queue / name).is_dir():
            return None, "not a message directory"
        if not self.message_path(queue, name).is_file():
            return None, "message file missing"
        try:
            envelope = self.read_envelope(queue, name)
        except FileNotFoundError:
            return None, f"{ENVELOPE_FILE} missing"
        except OSError as exc:      # one line, not the exception's text with the path
            return None, f"{ENVELOPE_FILE} unreadable: {exc.strerror or type(exc).__name__}"
        except EnvelopeError as exc:
            return None, f"envelope: {exc}"
        # set_aside() may have added ".N" to the name in corrupt/
        if envelope.queue_id != (name.split(".")[0] if queue == CORRUPT else name):
            return None, f"envelope is for {envelope.queue_id}"
        try:
            damage = _damage(self.message_path(queue, name), envelope,
                             self.set_aside_from(name) or queue if queue == CORRUPT else queue)
        except OSError as exc:
            return None, f"message file: {exc}"
        return (envelope, None) if damage is None else (None, damage)

    def set_aside(self, queue: str, name: str, reason: str | None = None) -> str:
        """Move the entry *name* of *queue* to corrupt/ for a person to look at (never
        deleted), noting beside it *queue* and *reason* (why it is set aside: what is wrong
        with it, or that it is a second copy); returns its name there, with ".N" added when
        corrupt/ has one of that name already. OSError when it cannot be moved."""
        target, n = self.root / CORRUPT / name, 0
        while target.exists() or target.is_symlink():
            n += 1
            target = self.root / CORRUPT / f"{name}.{n}"
        source = self.root / self._not_incoming(queue) / name
        os.rename(source, target)
        note = self.root / CORRUPT / (ORIGIN_PREFIX + target.name)
        try:            # what the listing says, and where a repaired copy goes back to
            tmp = note.with_name(note.name + TMP_SUFFIX)
            why = " ".join((reason or "").split())[:SET_ASIDE_REASON_CHARS]
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE),
                           "w", encoding="utf-8", errors="replace") as f:
                f.write(queue + "\n" + (why + "\n" if why else ""))
            os.rename(tmp, note)
        except OSError:
            pass        # the entry is aside all the same; the event names the queue
        _fsync_dir(target.parent)
        return target.name

    def set_aside_from(self, name: str) -> str | None:
        """The queue the corrupt/ entry *name* was set aside from, None when unknown
        (set aside by an older release)."""
        queue = self._set_aside_note(name)[0]
        return queue if queue in MESSAGE_QUEUES else None

    def set_aside_reason(self, name: str) -> str | None:
        """Why the corrupt/ entry *name* was set aside, as the core said when it did, None
        when not noted (set aside by an older release)."""
        return self._set_aside_note(name)[1] or None

    def _set_aside_note(self, name: str) -> tuple[str, str]:
        try:
            text = (self.root / CORRUPT / (ORIGIN_PREFIX + name)).read_text(
                "utf-8", errors="replace")
        except OSError:
            return "", ""
        queue, _, rest = text.partition("\n")
        return queue.strip(), rest.partition("\n")[0].strip()

    # helpers ----------------------------------------------------------------------

    def _write_atomic(self, path: Path, data: bytes) -> None:
        """write temp -> flush -> fsync(file) -> rename -> fsync(dir)."""
        tmp = path.with_name(path.name + TMP_SUFFIX)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self._step("after_envelope_fsync")
        os.rename(tmp, path)
        self._step("after_envelope_rename")
        _fsync_dir(path.parent)
