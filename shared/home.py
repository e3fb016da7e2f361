"""Creating and opening a data home: the services behind `init`, `migrate` and every command
that needs the database.
"""

from __future__ import annotations

import fcntl
import functools
import os
import secrets
import socket
import sqlite3
from dataclasses import dataclass

from shared import db
from shared.paths import DataHome
from shared.settings import generated_values
from shared.settings_store import apply_changes, load, stored_keys
from shared.tls import ensure_self_signed

__all__ = ["initialise", "open_db", "InitResult", "HomeMissing", "machine_hostname",
           "AlreadyRunning", "hold_lock", "lock_holder"]


class AlreadyRunning(Exception):
    """Another process holds this data home's lock of that name (message names its pid)."""


def hold_lock(home: DataHome, name: str, what: str) -> int:
    """Take the flock `run/<name>` for this process (one `what` per data home); returns the
    descriptor to keep open. The kernel drops it with the process (kill -9 too), so a lock
    is never stale; close-on-exec, so no child keeps it. Raises AlreadyRunning."""
    fd = os.open(home.run / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
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


def _holder_pid(fd: int) -> str:
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"


class HomeMissing(RuntimeError):
    """No initialised data home where one was expected."""


@dataclass(frozen=True)
class InitResult:
    created: bool
    generated_password: str | None  # printed once by the CLI, never stored in plain text
    password_set: bool
    migrations_applied: int
    certificate_created: bool


@functools.lru_cache(maxsize=1)
def machine_hostname() -> str:
    """The machine's FQDN, looked up once (getfqdn may ask DNS; never per session)."""
    name = socket.getfqdn()
    return name if name and name != "localhost" else socket.gethostname() or "localhost"


def initialise(home: DataHome, admin_password: str | None = None,
               reset_admin_password: bool = False) -> InitResult:
    """Create or complete the data home; idempotent.

    The administrator password is set when the home has none, or when
    `reset_admin_password` is true; without `admin_password` one is generated and returned.
    Raises SettingError for an invalid password.
    """
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
        applied = db.migrate(conn)
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
        hostname = load(conn)["smtp.hostname"] or machine_hostname()
    finally:
        conn.close()
    cert_created = ensure_self_signed(home.tls_key, home.tls_cert, hostname)
    return InitResult(created, generated, password_set, len(applied), cert_created)


def open_db(home: DataHome) -> sqlite3.Connection:
    """A connection to an initialised home whose schema matches this code."""
    if not home.exists():
        raise HomeMissing(f"no Mailmoat data home at {home.root}; run `mailmoat init` first")
    conn = db.connect(home.db)
    try:
        db.check_schema(conn)
    except Exception:
        conn.close()
        raise
    return conn
