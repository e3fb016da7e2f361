"""Per-client bounds: logon throttling, so a password cannot be guessed at wire speed, and
the bounds on the events one client can write of the kinds it decides the rate of
(`EventBudget`).

Rules:
- FAILED_LOGONS_PER_CLIENT failed logons from one client within FAILED_LOGON_WINDOW_SECONDS
  lock that client out for LOCKOUT_SECONDS: while locked out, its logon attempts are refused
  (HTTP 429) without checking the password. Before this, 40 guesses took 3.5 seconds.
- Per client, never per account: locking an account would let anyone lock the administrator
  out. Logons from other clients go on as before.
- A successful logon does not clear the client's count: with the report-only password known,
  logging on as `report` between guesses would otherwise reset the count for `admin`.
  Failures older than the window simply stop counting.
- An IPv6 client counts by its /64 (one host usually owns a whole /64, so counting single
  addresses would let it rotate through them); an IPv4 client by its address. A /64 is
  often a whole network segment, so what is locked out is said as `client_key` gives it:
  the lock-out page says "your network (fd00::/64)" and the event's data carries the key
  (console/auth).
- One client's logons are checked one at a time (`one_at_a_time`): parallel guesses would
  otherwise all pass the lock-out check before the first failure counted (30 requests at once
  were all tried). Other clients are not held up: a logon that waits longer than
  BUSY_WAIT_SECONDS for its client's turn is answered at once (ClientBusy, 429), so a burst
  from one client cannot hold all the console's worker threads (console review C5).
- A client decides how many of some events it makes, and each would be a row in the events
  database: an `EventBudget` bounds how many of one kind a client writes
  (console.security.record_within_budget), counted by `client_key` as logons are. The last
  one written says that the next are not; the first written after the pause says how many
  were left out. The alerts these events raise are throttled by the core already
  (core/notify.py rule 2). Two kinds have one:
  - http_protocol_violation (`ViolationBudget`): malformed requests, anybody's;
    VIOLATION_EVENTS_PER_CLIENT per VIOLATION_WINDOW_SECONDS.
  - unauthorized_access (`UnauthorizedBudget`): a logged-on report-only administrator's
    requests for administrator pages (console.roles); UNAUTHORIZED_EVENTS_PER_CLIENT per
    UNAUTHORIZED_WINDOW_SECONDS. Before this, 300 requests in 1.6 s wrote 303 events
    (authz finding 1); the pages refused stay refused whether their event is written or not.
- In the console process's memory, like the failed-logon counts of the alert
  (console.context.FailedLogons): a restart starts again. Bounded: past MAX_CLIENTS clients
  the one that tried least recently is forgotten. Times come from the app's wall clock.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

__all__ = ["LogonThrottle", "ClientBusy", "BUSY_WAIT_SECONDS", "FAILED_LOGONS_PER_CLIENT",
           "FAILED_LOGON_WINDOW_SECONDS", "LOCKOUT_SECONDS", "client_key", "ViolationBudget",
           "Allowance", "VIOLATION_EVENTS_PER_CLIENT", "VIOLATION_WINDOW_SECONDS", "EventBudget",
           "UnauthorizedBudget", "UNAUTHORIZED_EVENTS_PER_CLIENT",
           "UNAUTHORIZED_WINDOW_SECONDS"]

FAILED_LOGONS_PER_CLIENT = 10
FAILED_LOGON_WINDOW_SECONDS = 15 * 60
LOCKOUT_SECONDS = 15 * 60
MAX_CLIENTS = 10_000
IPV6_PREFIX_BITS = 64
BUSY_WAIT_SECONDS = 2.0     # a password check takes a fraction of this; a person one at a time
# A person whose browser sends a bad request now and then stays far below this; a scanner
# throwing malformed requests at the port reaches it in a second.
VIOLATION_EVENTS_PER_CLIENT = 10
VIOLATION_WINDOW_SECONDS = 15 * 60
# The report-only administrator's pages link to no administrator page: a person meets a
# refusal only by typing or following an outside link, far below this.
UNAUTHORIZED_EVENTS_PER_CLIENT = 10
UNAUTHORIZED_WINDOW_SECONDS = 15 * 60


class ClientBusy(Exception):
    """Another logon of this client is being checked (`one_at_a_time`)."""


def client_key(address: str | None) -> str:
    """What a client is counted by: its IPv4 address, or its IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or ""
    if ip.version == 6:     # (IPv4-mapped clients arrive as IPv4: security.py unmaps them)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX_BITS), strict=False))
    return str(ip)


@dataclass
class _Client:
    failures: deque = field(default_factory=lambda: deque(maxlen=FAILED_LOGONS_PER_CLIENT))
    locked_until: float = 0.0
    checking: threading.Lock = field(default_factory=threading.Lock)


class LogonThrottle:
    def __init__(self) -> None:
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = threading.Lock()

    def _client(self, address: str | None) -> _Client:
        """The client's record, made the most recent one (call with the lock held)."""
        key = client_key(address)
        client = self._clients.pop(key, None) or _Client()
        self._clients[key] = client
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)
        return client

    @contextmanager
    def one_at_a_time(self, address: str | None) -> Iterator[None]:
        """Hold while one logon of the client is checked, from `locked_for` to `fail`.
        Raises ClientBusy when another of its logons is still checked after
        BUSY_WAIT_SECONDS: a burst of parallel logons from one client must not hold every
        worker thread of the console waiting here."""
        with self._lock:
            client = self._client(address)
        if not client.checking.acquire(timeout=BUSY_WAIT_SECONDS):
            raise ClientBusy()
        try:
            yield
        finally:
            client.checking.release()

    def locked_for(self, address: str | None, now: float) -> float:
        """Seconds the client is still locked out for (0 = it may try)."""
        with self._lock:
            client = self._clients.get(client_key(address))
            return max(0.0, client.locked_until - now) if client else 0.0

    def fail(self, address: str | None, now: float) -> float:
        """Count one failed logon of the client; returns LOCKOUT_SECONDS when this failure
        locks it out, else 0."""
        with self._lock:
            client = self._client(address)
            client.failures.append(now)
            if len(client.failures) == FAILED_LOGONS_PER_CLIENT and \
                    now - client.failures[0] <= FAILED_LOGON_WINDOW_SECONDS:
                client.failures.clear()
                client.locked_until = now + LOCKOUT_SECONDS
                return float(LOCKOUT_SECONDS)
            return 0.0


@dataclass(frozen=True)
class Allowance:
    """What `EventBudget.take` allows for one event."""
    record: bool             # write its event
    is_last: bool = False    # the last one written before this client's are left out
    left_out: int = 0        # events of this client not written since its last one written


@dataclass
class _Spent:
    recorded: deque          # times of the client's events written, the last events_per_client
    left_out: int = 0


class EventBudget:
    """The events of one kind each client may write: `events_per_client` within
    `window_seconds` (module rules)."""

    def __init__(self, events_per_client: int, window_seconds: int) -> None:
        self.events_per_client = events_per_client
        self.window_seconds = window_seconds
        self._clients: OrderedDict[str, _Spent] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, address: str | None, now: float) -> Allowance:
        """Count one event of the client; whether it is written, and how."""
        key = client_key(address)
        with self._lock:
            client = self._clients.pop(key, None) or \
                _Spent(deque(maxlen=self.events_per_client))
            self._clients[key] = client
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
            recorded = client.recorded
            if len(recorded) == recorded.maxlen and \
                    now - recorded[0] < self.window_seconds:
                client.left_out += 1
                return Allowance(record=False)
            recorded.append(now)
            left_out, client.left_out = client.left_out, 0
            is_last = len(recorded) == recorded.maxlen and \
                now - recorded[0] < self.window_seconds
            return Allowance(record=True, is_last=is_last, left_out=left_out)


class ViolationBudget(EventBudget):
    """The http_protocol_violation events each client may write."""

    def __init__(self) -> None:
        super().__init__(VIOLATION_EVENTS_PER_CLIENT, VIOLATION_WINDOW_SECONDS)


class UnauthorizedBudget(EventBudget):
    """The unauthorized_access events each client may write."""

    def __init__(self) -> None:
        super().__init__(UNAUTHORIZED_EVENTS_PER_CLIENT, UNAUTHORIZED_WINDOW_SECONDS)
