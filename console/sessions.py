"""Console sessions kept on the server, so that ending a session really ends it.

Rules:
- At logon a session gets a random id; the signed cookie carries only that id (as Flask-Login's
  user id), Flask-WTF's CSRF secret and flash messages. What the session is — its account,
  the account's credential generation at logon, the time of its last request, whether it
  started over HTTPS — is kept here under that id.
- A request whose id is not here is logged off (console.auth.service). Log Off, the idle
  timeout, a password change and disabling the report account remove the id, so a copy of
  the cookie taken before is worth nothing (OWASP ASVS 3.3.1). Before this, Log Off only
  cleared the browser's copy of a cookie that stayed valid.
- Kept in the console process's memory, not in SQLite: the console is one process, and a
  restart of it ends every session anyway (the cookie key is made per process,
  console/app.py). Nothing else needs to read sessions.
- Bounded without a cap: the console's job about once a minute (console.jobs), and every
  logon first, remove the sessions idle past the timeout (`end_idle`), so what is kept is
  at most the logons of one timeout period, and a logon needs a password. `end_idle` and
  `end` hand each session to one caller only: whoever gets it writes its logoff. The ids
  `end_idle` ended are remembered (the last TIMED_OUT_KEPT) so that the session's next
  request says it timed out, not just that it ended.
- Thread-safe: cheroot serves requests from several threads. Callers get copies; a change
  goes through a method.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from dataclasses import dataclass

__all__ = ["SessionRecord", "Sessions"]

SESSION_ID_BYTES = 32   # 256 random bits (ASVS 3.2.2 asks for at least 64)
TIMED_OUT_KEPT = 10_000  # ids of sessions ended by the timeout, kept for their next request


@dataclass(frozen=True)
class SessionRecord:
    account: str
    generation: str         # the account's credential generation (console.auth.service)
    seen: float             # wall-clock time of the session's last request
    is_secure: bool         # started over HTTPS: used over HTTPS only
    client_ip: str | None   # where it logged on from (for the logoff event of `end_idle`)

    def idle_past(self, now: float, idle_seconds: float) -> bool:
        """No request for more than `idle_seconds`: the session has timed out."""
        return now - self.seen > idle_seconds


class Sessions:
    """The live sessions of one console process, by session id."""

    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}
        # ended by the timeout, oldest first: their next request is told why (the job ends
        # most of them before the browser comes back)
        self._timed_out: dict[str, bool] = {}
        self._lock = threading.Lock()

    def start(self, record: SessionRecord) -> str:
        """Keep `record` under a new random id; returns the id."""
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        with self._lock:
            self._records[session_id] = record
        return session_id

    def get(self, session_id: str | None) -> SessionRecord | None:
        if not session_id:
            return None
        with self._lock:
            return self._records.get(session_id)

    def update(self, session_id: str, **changes) -> None:
        """Change fields of a live session (`seen`, `generation`); an ended one stays ended."""
        with self._lock:
            record = self._records.get(session_id)
            if record is not None:
                self._records[session_id] = dataclasses.replace(record, **changes)

    def end(self, session_id: str | None) -> SessionRecord | None:
        """Forget the session; returns what it was (None when it was not live)."""
        if not session_id:
            return None
        with self._lock:
            return self._records.pop(session_id, None)

    def end_idle(self, now: float, idle_seconds: float) -> list[SessionRecord]:
        """Forget the sessions without a request for more than `idle_seconds`; returns them."""
        with self._lock:
            idle = [sid for sid, record in self._records.items()
                    if record.idle_past(now, idle_seconds)]
            self._timed_out.update(dict.fromkeys(idle, True))
            for oldest in list(self._timed_out)[:max(0, len(self._timed_out) - TIMED_OUT_KEPT)]:
                del self._timed_out[oldest]
            return [self._records.pop(sid) for sid in idle]

    def ended_by_timeout(self, session_id: str | None) -> bool:
        """Whether `end_idle` ended this session (asked once, by its next request)."""
        with self._lock:
            return self._timed_out.pop(session_id, False) if session_id else False
