"""Creating and opening a data home: the services behind `init`, `migrate` and every command
that needs the database.

The space reserve: SQLite in WAL mode cannot even open its database on a file system with
no byte free (its -shm file cannot grow: "disk I/O error"), so a core restarted on a full
disk would stay down, though delivering its queue is what frees the space (shared/disk.py).
The home therefore keeps `run/space-reserve`, SPACE_RESERVE_OCTETS of real blocks, written
by `init` and again at each core start when there is room (`keep_space_reserve`). A core
that cannot open its database at start because the disk is full deletes it and opens
again (`open_db_at_start`); the start that follows with room makes it again. A core that
stops while the disk is full may spend half of it on the events it still holds
(`room_for_events_at_close`), released a step at a time by shortening the file: the other
half stays the reserve's, for the next start to release, and what other programs writing
to the file system (the core's own retrying writer among them) can take meanwhile is only
the steps released (review21a R1: the whole reserve was deleted at once, and they took it).

Whose files: a command run as root on a data home that another user owns (the service user
`mailmoat` that `make run` as root creates, or a package's) runs as that user
(`become_owner`), so that what it writes (installed definitions, a database's -wal, a lock)
is the service's and not root's, which the service could not read; and so that what it
asks of the system (may a listener bind port 25?) is answered for the service. It only
ever drops rights: initgroups, setgid, setuid, with no way back.
"""

from __future__ import annotations

import fcntl
import functools
import os
import pwd
import secrets
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from shared import db
from shared.disk import disk_space, is_out_of_space
from shared.paths import DataHome
from shared.settings import defaults, generated_values, validate_changes
from shared.settings_addresses import ServerName
from shared.settings_types import RuleError
from shared.settings_store import apply_changes, load, stored_keys
from shared.tls import ensure_self_signed, half_pair_message

__all__ = ["initialise", "open_db", "require_home", "InitResult", "HomeMissing", "machine_hostname",
           "gateway_name", "hostname_notice",
           "become_owner", "invoking_user", "OwnerUnusable",
           "AlreadyRunning", "hold_lock", "lock_holder", "migrate_stopped", "DiskFull",
           "ProcessLock", "RUN_LOCK", "CORE_LOCK", "CONSOLE_LOCK",
           "open_db_at_start",
           "keep_space_reserve", "space_reserve", "room_for_events_at_close",
           "SPACE_RESERVE_OCTETS", "RELEASE_STEP_OCTETS"]

SPACE_RESERVE_OCTETS = 1 << 20  # room for SQLite's -shm and -wal and the start's first writes
# what a stop on a full disk releases of it at a time (`room_for_events_at_close`): room for
# a chunk of events (EventWriter.CLOSE_CHUNK) and its WAL frames
RELEASE_STEP_OCTETS = 64 << 10
# Under this many octets free, SQLite's "disk I/O error" at open is the full disk (its -shm
# needs 32 KiB).
_FULL_DISK_OCTETS = 64 << 10


class AlreadyRunning(Exception):
    """Another process holds this data home's lock of that name (message names its pid)."""


# how long a start waits for a lock someone only looks at (`lock_holder`) to be free
LOOKER_WAIT_SECONDS = 1.0


def hold_lock(home: DataHome, name: str, what: str) -> int:
    """Take the flock `run/<name>` for this process (one `what` per data home); returns the
    descriptor to keep open. The kernel drops it with the process (kill -9 too), so a lock
    is never stale; close-on-exec, so no child keeps it. Raises AlreadyRunning."""
    fd = os.open(home.run / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + LOOKER_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            # `lock_holder` holds the lock shared for an instant (the Status page, `migrate`
            # looking whether a core runs): a start must not fail for that look
            if time.monotonic() < deadline:
                # blocking, in async run_core too (core/app.py): called at a start, before
                # anything else runs on its loop; a later caller would want trio.to_thread
                time.sleep(0.01)
                continue
            pid = _holder_pid(fd)
            os.close(fd)
            raise AlreadyRunning(f"another {what} is running on this data home (pid {pid})"
                                 ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def lock_holder(home: DataHome, name: str) -> str | None:
    """The pid (as its holder wrote it) of the process that holds `run/<name>`, or None when
    no process does (it takes the lock, shared, for a moment to find out)."""
    try:
        fd = os.open(home.run / name, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)   # closing the descriptor drops it
    except BlockingIOError:
        return _holder_pid(fd)
    else:
        return None
    finally:
        os.close(fd)


class ProcessLock(NamedTuple):
    """The lock in run/ a Mailmoat process holds while it runs (`hold_lock`): one per data
    home, its file's name and the words messages name its holder with."""
    name: str
    what: str


RUN_LOCK = ProcessLock("run.lock", "`mailmoat run`")
CORE_LOCK = ProcessLock("core.lock", "Mailmoat core")
CONSOLE_LOCK = ProcessLock("console.lock", "Mailmoat console")


def migrate_stopped(home: DataHome, conn) -> list:
    """Apply the pending migrations (shared.db.migrate) unless a Mailmoat process runs on
    the home: one of an older release would go on writing what a migration just rewrote
    (0004's result words) into rows no migration looks at again (upgrade20 B1). The run,
    core and console locks are held while it migrates, so none starts meanwhile (a service
    manager's restart of an older core: review20a R6). Raises AlreadyRunning naming the one
    that runs; with nothing pending, nothing is checked or held."""
    if not db.pending_migrations(conn):
        return db.migrate(conn)         # refuses a database newer than this code
    # a home restored from a backup has no run/ (the backup leaves it out: review20d R1)
    home.run.mkdir(mode=0o700, exist_ok=True)
    held = []
    try:
        for lock in (RUN_LOCK, CORE_LOCK, CONSOLE_LOCK):
            try:
                held.append(hold_lock(home, *lock))
            except AlreadyRunning as exc:
                raise AlreadyRunning(f"{exc}; stop Mailmoat before its database is upgraded, "
                                     "then start the new release (docs/operations.md, "
                                     "Upgrading)") from None
        return db.migrate(conn)
    finally:
        for fd in held:
            os.close(fd)


def _holder_pid(fd: int) -> str:
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"


class HomeMissing(RuntimeError):
    """No initialised data home where one was expected."""


class OwnerUnusable(RuntimeError):
    """Run as root on another user's data home, and this process cannot become that user
    or cannot run as it (message: one line saying why and what to do)."""


def invoking_user() -> str:
    """Who ran this command, for the audit trail (the events of changes made from the command
    line): the account it was started as — root, not the data home's owner it became
    (`become_owner`; tester26b B1) — and, run with sudo, the person who asked:
    "root (sudo: alice)"."""
    return _invoker or _account_name()


def _account_name() -> str:
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"uid {uid}"
    sudo = os.environ.get("SUDO_USER")
    return f"{name} (sudo: {sudo})" if sudo and sudo != name else name


_invoker: str | None = None     # set when become_owner switches user


def become_owner(home: DataHome) -> str | None:
    """Run as root on a data home another user owns, become that user (its groups, its
    group, its id, and HOME, USER and LOGNAME; none of root's TMPDIR, TEMP, TMP and XDG_*)
    for the rest of this process and the processes it starts; the user's name, or None when
    nothing changed (not root, no such directory yet: `init` makes it root's, or root's own
    home). Raises OwnerUnusable, after having dropped root or before, but always before
    anything touched the home."""
    if os.geteuid() != 0:
        return None
    try:
        owner = home.root.stat().st_uid
    except FileNotFoundError:
        return None
    if owner == 0:
        return None
    try:
        account = pwd.getpwuid(owner)
    except KeyError:
        raise OwnerUnusable(f"the data home {home.root} belongs to user id {owner}, which has "
                            f"no account on this system; give the home to the user Mailmoat "
                            f"runs as (chown -R)") from None
    name = account.pw_name
    # What this process will still read once it is that user: the interpreter, the standard
    # library, the installed packages and Mailmoat (root's own Python may live under /root,
    # as pyenv's does: `make run` as root makes .venv-service for that reason).
    here = os.path.abspath(os.getcwd())
    needed = {sys.executable: os.X_OK}
    for path in (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), *sys.path):
        if path and os.path.abspath(path) != here and os.path.exists(path):
            needed.setdefault(path, os.R_OK | os.X_OK if os.path.isdir(path) else os.R_OK)
    global _invoker
    _invoker = _account_name()
    try:
        os.initgroups(name, account.pw_gid)
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
    except OSError as exc:
        raise OwnerUnusable(f"cannot run as {name}, who owns the data home {home.root} "
                            f"({exc.strerror}); run mailmoat as {name}") from None
    os.environ.update(HOME=account.pw_dir, USER=name, LOGNAME=name)
    # Root's TMPDIR and XDG places (/root/tmp, /run/user/0) are out of the user's reach;
    # without them, temporary files go to the system's directory and XDG's defaults follow
    # the new HOME. tempfile reads TEMP and TMP too, and may have chosen root's already.
    for variable in [key for key in os.environ
                     if key in ("TMPDIR", "TEMP", "TMP") or key.startswith("XDG_")]:
        del os.environ[variable]
    tempfile.tempdir = None
    unreachable = [path for path, mode in needed.items() if not os.access(path, mode)]
    if unreachable:
        raise OwnerUnusable(f"{name}, who owns the data home {home.root}, cannot run this "
                            f"Mailmoat ({unreachable[0]} is out of its reach); use an "
                            f"installation {name} can run, such as the checkout's "
                            f".venv-service/bin/mailmoat that `make run` as root makes")
    return name


@dataclass(frozen=True)
class InitResult:
    created: bool
    generated_password: str | None  # printed once by the CLI, never stored in plain text
    password_set: bool
    migrations_applied: int
    certificate_created: bool
    tls_problem: str | None  # only one of key.pem and cert.pem is there; both left alone


@functools.lru_cache(maxsize=1)
def machine_hostname() -> str:
    """The machine's FQDN, looked up once (getfqdn may ask DNS; never per session)."""
    name = socket.getfqdn()
    return name if name and name != "localhost" else socket.gethostname() or "localhost"


def gateway_name(settings: Mapping[str, Any]) -> str:
    """The gateway's name: smtp.hostname, or the machine's when that is null. The one answer
    for the SMTP banner, EHLO, Received fields and bounces, the self-signed certificate and
    the Status page's "Server and port" (which used getfqdn alone and showed `localhost`
    where the banner said `vm`: dayone17 finding 2)."""
    return settings["smtp.hostname"] or machine_hostname()


def hostname_notice(settings: Mapping[str, Any], name: str | None = None) -> str | None:
    """What the Status page and the core's start say while smtp.hostname is null and the
    machine's name, which null takes unchecked (ServerName), is one the setting's own rule
    refuses (a single label, localhost): receivers that want a fully qualified EHLO refuse
    the gateway's mail (dayone17 finding 2). `name`: the machine's name as the running core
    found it (its status snapshot), else this process's. None otherwise."""
    if settings["smtp.hostname"]:
        return None
    name = name or machine_hostname()
    try:
        ServerName().check(name)
    except RuleError:
        return (f"smtp.hostname is empty, so the gateway takes the machine's name, {name}, "
                f"which is not a fully qualified one: receivers may refuse EHLO {name}. Set "
                f"smtp.hostname to the gateway's fully qualified name (Configuration › Setup, "
                f"host name in the SMTP banner).")
    return None


def initialise(home: DataHome, admin_password: str | None = None,
               reset_admin_password: bool = False) -> InitResult:
    """Create or complete the data home; idempotent.

    The administrator password is set when the home has none, or when
    `reset_admin_password` is true; without `admin_password` one is generated and returned.
    A self-signed TLS pair is made only when tls/ holds neither key.pem nor cert.pem; with
    one alone, both stay as they are and `tls_problem` says what to do.
    Raises SettingError for an invalid password, before anything is made: a refused init
    leaves no home behind that the next one would call initialised, without a password
    (clispec19 B2).
    """
    if admin_password is not None:
        validate_changes(defaults(), {"admin.password": admin_password})
    created = not home.exists()
    home.create()
    # mkdir(parents=True) gives intermediate directories (spool/quarantine) the umask's mode;
    # the data home is for the Mailmoat user only.
    for directory in home.directories():
        for path in (directory, *directory.parents):
            if not path.is_relative_to(home.root):
                break
            os.chmod(path, 0o700)
    conn = db.connect(home.db)
    try:
        applied = migrate_stopped(home, conn)
        current = load(conn)
        changes = {}
        have = stored_keys(conn)
        for key, value in generated_values().items():
            if key not in have:
                changes[key] = value
        generated = None
        password_set = False
        if current.get("admin.password") is None or reset_admin_password:
            if admin_password is None:
                generated = admin_password = secrets.token_urlsafe(12)
            changes["admin.password"] = admin_password
            password_set = True
        if changes:
            apply_changes(conn, changes)
        hostname = gateway_name(load(conn))
    finally:
        conn.close()
    cert_created = ensure_self_signed(home.tls_key, home.tls_cert, hostname)
    keep_space_reserve(home)
    return InitResult(created, generated, password_set, len(applied), cert_created,
                      half_pair_message(home.tls_key, home.tls_cert))


def require_home(home: DataHome) -> None:
    """Raise HomeMissing unless `home` is an initialised data home."""
    if not home.exists():
        raise HomeMissing(f"no Mailmoat data home at {home.root}; run `mailmoat init` first")


def open_db(home: DataHome, *, writing: bool = False) -> sqlite3.Connection:
    """A connection to an initialised home whose schema matches this code. `writing`: for a
    command that writes the database (`config set`, a queue request), which a read-only or
    unwritable home refuses at once, in the one line every command gives for it
    (DatabaseUnavailable: `cannot use PATH (Read-only file system)`), not at its first
    write (clispec19 A1); reading commands work on such a home as far as SQLite can."""
    require_home(home)
    conn = db.connect(home.db)
    try:
        db.check_schema(conn)
        if writing:
            db.check_writable(home.db)
    except Exception:
        conn.close()
        raise
    return conn


class DiskFull(RuntimeError):
    """The data home's file system is too full to open the database (message: one line)."""


def space_reserve(home: DataHome) -> Path:
    return home.run / "space-reserve"


def keep_space_reserve(home: DataHome) -> bool:
    """Write the space reserve unless it is there whole or the file system has no room for
    it (less than twice its size free: it must not be what fills the disk); whether it is
    there now. Best effort: it never raises."""
    path = space_reserve(home)
    try:
        st = os.stat(path)
        if st.st_size >= SPACE_RESERVE_OCTETS and st.st_blocks * 512 >= SPACE_RESERVE_OCTETS:
            return True
    except OSError:
        pass
    if not home.run.is_dir() or disk_space(home.run).free_octets < 2 * SPACE_RESERVE_OCTETS:
        return False            # run/ is made by the core's start: the next start makes it
    partial = path.with_name(path.name + ".new")
    try:
        with open(partial, "wb") as handle:
            # Random octets, not zeros and not a truncate: a sparse file, or one a
            # compressing file system (btrfs, ZFS) stores in a few blocks, frees nothing.
            handle.write(os.urandom(SPACE_RESERVE_OCTETS))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except OSError:         # no room after all, or run/ not ours: never a reason not to start
        partial.unlink(missing_ok=True)
        return False
    return True


def room_for_events_at_close(home: DataHome) -> Callable[[], bool]:
    """The core's EventWriter `room_at_close` (shared/events.py): asked while the disk is
    full at the core's stop, before each chunk of the events it still holds. Yes when the
    data home's file system has RELEASE_STEP_OCTETS free; else it shortens the space reserve
    by that much, never below half its size, and says yes if that freed it. The half left is
    the next start's (the module's docstring; a start with room makes the reserve whole
    again). Never raises."""
    def room() -> bool:
        if _free_octets(home) >= RELEASE_STEP_OCTETS:
            return True
        path = space_reserve(home)
        try:
            size = os.stat(path).st_size
            if size <= SPACE_RESERVE_OCTETS // 2:
                return False    # released down to the half already, or gone (at start)
            os.truncate(path, max(SPACE_RESERVE_OCTETS // 2, size - RELEASE_STEP_OCTETS))
        except OSError:
            return False
        return _free_octets(home) >= RELEASE_STEP_OCTETS
    return room


def _free_octets(home: DataHome) -> int:
    try:
        return disk_space(home.root).free_octets
    except OSError:
        return 0


def open_db_at_start(home: DataHome,
                     opener: Callable[[DataHome], sqlite3.Connection] | None = None
                     ) -> tuple[sqlite3.Connection, str | None]:
    """`opener` (open_db, or `mailmoat run`'s open-and-migrate) for a start, which a full
    disk must not stop: when the database cannot be opened because the file system is full,
    delete the space reserve and open again. Returns the connection and, when the reserve
    went, what happened, for the event the caller records; with room, the reserve is made if
    it is missing. Raises DiskFull."""
    opener = opener or open_db
    try:
        conn = opener(home)
    except (sqlite3.OperationalError, db.DatabaseUnavailable) as exc:
        if not _full(home, exc):
            raise
    else:
        keep_space_reserve(home)
        return conn, None
    free = disk_space(home.root).free_octets
    try:
        reserve = os.stat(space_reserve(home))
        os.unlink(space_reserve(home))
    except FileNotFoundError:
        raise DiskFull(_full_message(home, free, "no space reserve left to release")) from None
    # what it held, not what it is made with: a stop on a full disk leaves half of it
    # (room_for_events_at_close), and a sparse tail a stale truncate left held nothing
    size = min(reserve.st_size, reserve.st_blocks * 512)
    released = (f"the data home's file system was full ({free} octets free): the space reserve "
                f"{space_reserve(home)} ({size} octets) was deleted so that "
                f"Mailmoat could start; it is made again at a start with room")
    try:
        return opener(home), released
    except (sqlite3.OperationalError, db.DatabaseUnavailable) as exc:
        if not _full(home, exc):
            raise
        raise DiskFull(_full_message(home, disk_space(home.root).free_octets,
                                     "even with the space reserve released")) from None


def _full(home: DataHome, exc: Exception) -> bool:
    return is_out_of_space(exc) or disk_space(home.root).free_octets < _FULL_DISK_OCTETS


def _full_message(home: DataHome, free: int, why: str) -> str:
    return (f"the file system of {home.root} is full ({free} octets free, {why}): the "
            f"database cannot be opened; free some space there, then start again")
