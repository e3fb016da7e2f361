"""How many SMTP sessions each client has, for the per-client limit (core/smtp/server.py
rules): in one process, or together in every listener process of a data home.

Rules
    1. A client is its IP address; its sessions are its connections accepted and not yet
       ended, served or waiting for a session slot.
    2. `LocalClientSessions` counts in a dict: the listener inside the core process.
    3. `SharedClientSessions` counts in a file all listener processes map
       (`run/smtp-client-sessions`): a header with a random key, then one region of SLOTS
       counters per process. Process i writes only region i, which it zeroes when it
       starts (a process that ended took its sessions with it; the new processes of a
       change of their count, which start while the old ones finish their sessions, count
       in the other file of listeners.SESSIONS_FILES), and a client's count is the sum of
       its slot over the regions. Counting together matters:
       the kernel spreads a client's connections over the processes at random, so a limit
       per process refused a client with 5 connections to a 2-process gateway one time in
       16, while a client counted together has its whole share wherever its connections
       land, and one holding that share cannot choose the process they fill.
    4. The slot is a keyed hash of the address (the key made at random with the file), so
       nobody can pick addresses that fall on another client's slot. Two clients may share
       one by chance (SLOTS is far above the sessions a gateway serves at once, so rarely)
       and then share one limit; two processes accepting the same client at the same moment
       may both admit it. The limit holds to within a connection or two, which is what it
       is for: no host takes every session.
    5. Never block and never raise once made: the counters are read and written through
       the mapping, without a lock (the file is locked only while it is made). Its region's
       blocks are allocated before it is written through the mapping: a store into a page
       a full disk has no block for kills the process (SIGBUS), where the allocation raises
       OSError (ENOSPC), which the listener survives (core/smtp/listener_main.py
       `client_sessions`; review21a R4).
    6. A listener process that cannot make the file (that full disk) counts in
       `AloneClientSessions`: its own sessions alone, as rule 2, and a client has there only
       the process's part of its limit (core/smtp/server.py rules; with the whole limit in
       each process one host could take every session: review21d R3). At the first session
       opened RETRY_SECONDS or more after its last try, it tries to make the file again;
       once it has it, it counts together again, the sessions it counted alone still
       counted in it until they end. The try runs in the trio thread: what can wait there is
       the file's lock, which other processes hold only while they make theirs.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import ipaddress
import mmap
import os
from pathlib import Path
from typing import Callable

import trio

__all__ = ["AloneClientSessions", "LocalClientSessions", "SharedClientSessions", "SLOTS",
           "RETRY_SECONDS"]

SLOTS = 1 << 16
RETRY_SECONDS = 60                   # rule 6
_MAGIC = b"MMCS1\n\0\0"
_KEY_OCTETS = 16
_HEADER_OCTETS = 64                  # magic, key, room to grow
_COUNTER_OCTETS = 4                  # signed 32 bits: aligned, so read and written whole


class LocalClientSessions:
    """The sessions of each client in this process (rule 2)."""

    is_together = False     # its count is this process's alone

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def opened(self, client_ip: str) -> int:
        """Count a new session of `client_ip`; returns its sessions, this one included."""
        count = self._counts.get(client_ip, 0) + 1
        self._counts[client_ip] = count
        return count

    def closed(self, client_ip: str) -> None:
        """One session of `client_ip` (counted by `opened`) has ended."""
        count = self._counts[client_ip] - 1
        if count:
            self._counts[client_ip] = count
        else:
            del self._counts[client_ip]

    def of(self, client_ip: str) -> int:
        return self._counts.get(client_ip, 0)


class SharedClientSessions:
    """The sessions of each client in all `processes` listener processes; this one is
    number `index` (rule 3). Raises OSError when the file cannot be made or mapped."""

    is_together = True

    def __init__(self, path: Path, processes: int, index: int) -> None:
        if not 0 <= index < processes:
            raise ValueError(f"process {index} of {processes}")
        self._processes = processes
        self._index = index
        size = _HEADER_OCTETS + processes * SLOTS * _COUNTER_OCTETS
        region = SLOTS * _COUNTER_OCTETS
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)      # one process makes the header at a time
            try:
                if os.fstat(fd).st_size < size:
                    os.ftruncate(fd, size)      # the new counters read 0
                if os.pread(fd, len(_MAGIC), 0) != _MAGIC:
                    os.pwrite(fd, _MAGIC + os.urandom(_KEY_OCTETS), 0)
                start = _HEADER_OCTETS + index * region
                _allocate(fd, start, region)
                self._map = mmap.mmap(fd, size)
                self._map[start:start + region] = bytes(region)
            finally:
                # mmap keeps a duplicate of fd, which would hold the lock for ever
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        self._key = bytes(self._map[len(_MAGIC):len(_MAGIC) + _KEY_OCTETS])
        self._counts = memoryview(self._map)[_HEADER_OCTETS:].cast("i")

    def _slot(self, client_ip: str) -> int:
        packed = ipaddress.ip_address(client_ip).packed
        digest = hashlib.blake2b(packed, digest_size=4, key=self._key).digest()
        return int.from_bytes(digest, "little") % SLOTS

    def opened(self, client_ip: str) -> int:
        """Count a new session of `client_ip`; returns its sessions in every process, this
        one included."""
        slot = self._slot(client_ip)
        self._counts[self._index * SLOTS + slot] += 1
        return self._sum(slot)

    def closed(self, client_ip: str) -> None:
        """One session of `client_ip` (counted here by `opened`) has ended."""
        self._counts[self._index * SLOTS + self._slot(client_ip)] -= 1

    def of(self, client_ip: str) -> int:
        return self._sum(self._slot(client_ip))

    def _sum(self, slot: int) -> int:
        counts = self._counts
        return sum(max(0, counts[region * SLOTS + slot]) for region in range(self._processes))


class AloneClientSessions:
    """The sessions of each client in this process alone while `make_shared()` (a
    SharedClientSessions, or OSError) fails, then in every process (rule 6);
    `on_together()` when that happens. Made and used in the trio thread."""

    def __init__(self, make_shared: Callable[[], SharedClientSessions],
                 on_together: Callable[[], None] = lambda: None) -> None:
        self._make_shared = make_shared
        self._on_together = on_together
        self._alone = LocalClientSessions()
        self._together: SharedClientSessions | None = None
        self._tried = trio.current_time()

    @property
    def is_together(self) -> bool:
        return self._together is not None

    def opened(self, client_ip: str) -> int:
        """Count a new session of `client_ip`; returns its sessions that this process knows
        of, this one included."""
        if self._together is None and trio.current_time() - self._tried >= RETRY_SECONDS:
            self._try_together()
        if self._together is None:
            return self._alone.opened(client_ip)
        return self._together.opened(client_ip) + self._alone.of(client_ip)

    def closed(self, client_ip: str) -> None:
        """One session of `client_ip` (counted by `opened`) has ended: one counted alone
        first, while there are (which one ended does not matter, only how many are open)."""
        if self._alone.of(client_ip):
            self._alone.closed(client_ip)
        else:
            self._together.closed(client_ip)

    def of(self, client_ip: str) -> int:
        together = self._together.of(client_ip) if self._together is not None else 0
        return together + self._alone.of(client_ip)

    def _try_together(self) -> None:
        self._tried = trio.current_time()
        try:
            self._together = self._make_shared()
        except OSError:
            return          # said once, when it began to count alone
        self._on_together()


def _allocate(fd: int, start: int, length: int) -> None:
    """Give the file's octets [start, start + length) blocks of their own (rule 5); raises
    OSError (ENOSPC) when the file system has none left."""
    try:
        os.posix_fallocate(fd, start, length)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        # a file system that cannot (some network and older ZFS ones): write the zeros;
        # only this process's region, which it zeroes anyway
        os.pwrite(fd, bytes(length), start)
