"""SMTP conversation logs (SPEC §3 "Diagnostics"; guide §3 "Configuring queue file save and
SMTP conversation logging"): what was said on one connection, for support.

What this module owns
    `ConversationLog`, the log of one inbound connection or of one outbound delivery
    attempt, and `WriteFailures`, which says when logs cannot be written.

Rules
    1. One file per inbound connection, `inbound-<UTC start>-<connection id>.log`, and one
       per outbound delivery attempt, `outbound-<UTC start>-<queue id>-<attempt>.log` (the
       guide: "one log is generated for each message delivery attempt"), written once, when
       the connection or the attempt ends. A name already taken gets "-2", "-3" … before
       ".log". A missing diagnostics directory is made again (0700, as the data home); a log
       that still cannot be written is said by WriteFailures, never lost without a word.
    2. `diagnostics.conversation.inbound|outbound`: off | on_error | all. With on_error the
       log is kept when an error of the class `diagnostics.conversation.errors` names (all:
       any) happened. The caller names the class of each error (ERROR_CLASSES; what each
       covers is in docs/operations.md, Troubleshooting, "SMTP conversations").
    3. Lines as sent, whatever the socket reads: bytes are cut at LF, the CRLF left out; a
       bare LF shows as \\x0a, and control characters (NUL, ESC, CR, DEL, the C1 controls)
       and octets that are not UTF-8 as \\xNN, so `cat` of a log cannot drive a terminal.
       Each line starts with its UTC time (ISO 8601, milliseconds), then `C:` (the client),
       `S:` (the server), `!!` (an error and its class) or `--` (a note: TLS, connections).
    4. `diagnostics.conversation.data` (the DATA stream: the client's bytes after the
       server's 354, up to the "." that ends them, found as core/smtp/readers.py rule 2
       finds it; commands pipelined after it are commands again): ignore leaves it out;
       summarize
       writes one line `<message data, N lines, M octets>` where it ends; echo writes its
       lines, up to MAX_ECHO_OCTETS in a log, then counts the rest and writes that line.
    5. Secrets never reach a log: the argument of AUTH, and every line after an AUTH
       command until the next command, show as ****.
    6. Memory is bounded: a line keeps its first MAX_LINE_OCTETS; past MAX_LOG_OCTETS of
       lines other than echoed DATA only the last TAIL_LINES are kept, so the end of the
       conversation (its errors, the last replies) is always in the log.

Never: block the session (the file is written in a worker thread), raise because of what a
peer sent.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import re
import time
from collections import deque
from pathlib import Path
from typing import Callable, Mapping

import trio

from core.smtp.commands import KNOWN_VERBS, UNSUPPORTED_VERBS
from shared.events import Action

__all__ = ["ConversationLog", "WriteFailures", "tls_summary", "ERROR_CLASSES", "MAX_LOG_OCTETS",
           "MAX_ECHO_OCTETS", "MAX_LINE_OCTETS", "TAIL_LINES", "REPORT_SECONDS"]

ERROR_CLASSES = ("communication", "protocol", "local", "unsupported")
MAX_LOG_OCTETS = 1 << 20     # a log is diagnostics, not an archive (rule 6)
MAX_ECHO_OCTETS = 1 << 20    # echoed DATA per log (rule 4)
MAX_LINE_OCTETS = 4096       # of one line; SMTP's own limits are 512 and 1000 (RFC 5321)
TAIL_LINES = 200
REPORT_SECONDS = 60.0        # WriteFailures: at most one event per minute and process
DIRECTORY_MODE = 0o700       # the data home's (shared/paths.py)

_VERBS = frozenset(verb.encode() for verb in KNOWN_VERBS | UNSUPPORTED_VERBS)
_AUTH_ARGUMENT = re.compile(rb"^(AUTH\s+\S+)\s+.*$", re.IGNORECASE | re.DOTALL)
_PLAIN = re.compile(rb"[\x20-\x7e\t]*")
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _shown(line: bytes) -> bytes:
    """`line` safe for a terminal (rule 3): UTF-8 kept, the rest escaped as \\xNN."""
    if _PLAIN.fullmatch(line):
        return line
    text = line.decode("utf-8", "backslashreplace")
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", text).encode()


def _stamp(seconds: float) -> str:
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) \
        + f".{int((seconds - whole) * 1000):03d}Z"


def tls_summary(stream) -> str:
    """"TLSv1.3, cipher TLS_AES_256_GCM_SHA384" for a trio.SSLStream after its handshake."""
    cipher = stream.cipher()
    return f"{stream.version()}, cipher {cipher[0]}" if cipher else str(stream.version())


class _LineCutter:
    """One direction's bytes cut into lines at LF (rule 3), the first MAX_LINE_OCTETS of
    each kept. Yields (kept octets without the LF, octets of the line with its LF, whether
    it ended in CRLF)."""

    def __init__(self) -> None:
        self._head = b""
        self._octets = 0
        self._last = b""

    def feed(self, data: bytes) -> list[tuple[bytes, int, bool]]:
        lines = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            if piece:
                if len(self._head) < MAX_LINE_OCTETS:
                    self._head += piece[:MAX_LINE_OCTETS - len(self._head)]
                self._octets += len(piece)
                self._last = piece[-1:]
            if end < 0:
                return lines
            lines.append((self._head, self._octets + 1, self._last == b"\r"))
            self._head, self._octets, self._last = b"", 0, b""
            start = end + 1

    def rest(self) -> tuple[bytes, int] | None:
        """The unfinished line, if any (and forget it)."""
        if not self._octets:
            return None
        rest = (self._head, self._octets)
        self._head, self._octets, self._last = b"", 0, b""
        return rest


def _text(head: bytes, octets: int, crlf: bool) -> bytes:
    """A cut line as the log shows it: CRLF implied, a bare LF as \\x0a, a cut-off end
    counted."""
    if octets - 1 > len(head):
        return _shown(head) + f" ... ({octets - 1 - len(head)} more octets)".encode()
    return _shown(head[:-1]) if crlf else _shown(head + b"\n")


class ConversationLog:
    """The log of one conversation (rules above). `name` ends the file name (the
    connection id, or "<queue id>-<attempt>"); `title` is its first line; `now` the wall
    clock (unix seconds)."""

    def __init__(self, settings: Mapping, direction: str, name: str, title: str, *,
                 now: Callable[[], float] = time.time):
        self.mode = settings[f"diagnostics.conversation.{direction}"]
        self.error_class = settings["diagnostics.conversation.errors"]
        self.data_mode = settings["diagnostics.conversation.data"]
        self.direction = direction
        self.name = name
        self.now = now
        self.error_kinds: set[str] = set()
        started = now()
        self.started = started
        self._header = [f"# {title}".encode("utf-8", "replace"),
                        f"# started {_stamp(started)}; diagnostics.conversation: "
                        f"{direction} {self.mode}, errors {self.error_class}, "
                        f"data {self.data_mode}".encode()]
        self._lines: list[bytes] = []       # the head of the log (rule 6)
        self._size = 0
        self._tail: deque[bytes] | None = None
        self._capped_at = ""                # when the first line went to the tail
        self._left_out = 0
        self._client = _LineCutter()
        self._server = _LineCutter()
        self._after_auth = False            # rule 5
        # the DATA stream (rule 4)
        self._data_next = False
        self._in_data = False
        self._data_previous_crlf = True
        self._data_lines = 0
        self._data_octets = 0
        self._echoed = 0
        self._echo_capped = False
        self._finished = False

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    # --- what was said -----------------------------------------------------------------
    def client(self, data: bytes) -> None:
        """Bytes the client sent."""
        if not self.enabled:
            return
        if self._data_next:
            self._data_next = False
            self._start_data()
        stamp = _stamp(self.now())
        for head, octets, crlf in self._client.feed(data):
            if self._in_data:
                self._data_line(stamp, head, octets, crlf)
            else:
                self._add(stamp, b"C: ", self._masked(_text(head, octets, crlf)))

    def server(self, data: bytes) -> None:
        """Bytes the server sent."""
        if not self.enabled:
            return
        stamp = _stamp(self.now())
        for head, octets, crlf in self._server.feed(data):
            if head.startswith(b"354"):
                self._data_next = True      # what the client sends next is the stream
            self._add(stamp, b"S: ", _text(head, octets, crlf))

    def error(self, kind: str, detail: str) -> None:
        """An SMTP error of class `kind` (ERROR_CLASSES): decides whether an on_error log
        is kept (rule 2)."""
        assert kind in ERROR_CLASSES, kind
        self.error_kinds.add(kind)
        if self.enabled:
            self._add(_stamp(self.now()), b"!! ",
                      _shown(f"{kind}: {detail}".encode("utf-8", "replace")))

    def note(self, text: str) -> None:
        """A fact about the connection that neither side said (TLS, reuse, connecting)."""
        if self.enabled:
            self._add(_stamp(self.now()), b"-- ", _shown(text.encode("utf-8", "replace")))

    def tls(self, stream) -> None:
        """Note the TLS session of `stream` (a trio.SSLStream after its handshake): protocol
        version, cipher and, when the peer sent one, its certificate's SHA-256."""
        text = f"TLS established: {tls_summary(stream)}"
        certificate = stream.getpeercert(binary_form=True)
        if certificate:
            text += f"; peer certificate sha256 {hashlib.sha256(certificate).hexdigest()}"
        self.note(text)

    def _masked(self, line: bytes) -> bytes:
        verb = line.split(b" ", 1)[0].upper()
        if self._after_auth:
            if verb not in _VERBS:
                return b"****"
            self._after_auth = False
        if verb == b"AUTH":
            self._after_auth = True
            return _AUTH_ARGUMENT.sub(rb"\1 ****", line)
        return line

    # --- the DATA stream (rule 4) ------------------------------------------------------
    def _start_data(self) -> None:
        self._in_data = True
        self._data_previous_crlf = True     # the DATA line ended in CRLF
        self._data_lines = self._data_octets = 0

    def _data_line(self, stamp: str, head: bytes, octets: int, crlf: bool) -> None:
        if head == b".\r" and octets == 3 and self._data_previous_crlf:
            self._in_data = False
            self._end_data(stamp, b"")
            if self.data_mode == "echo" and not self._echo_capped:
                self._add(stamp, b"C: ", b".")
            self._echo_capped = False
            return
        self._data_previous_crlf = crlf
        self._data_lines += 1
        self._data_octets += octets
        if self.data_mode != "echo" or self._echo_capped:
            return
        if self._echoed + octets > MAX_ECHO_OCTETS:
            self._echo_capped = True
            self._add(stamp, b"-- ", f"DATA echo stops here ({MAX_ECHO_OCTETS} octets in "
                                     f"this log): the rest is counted only".encode())
            return
        self._echoed += octets
        self._add(stamp, b"C: ", _text(head, octets, crlf), echo=True)

    def _end_data(self, stamp: str, how: bytes) -> None:
        if self.data_mode == "summarize" or self._echo_capped:
            self._add(stamp, b"C: ", f"<message data, {self._data_lines} lines, "
                                     f"{self._data_octets} octets".encode() + how + b">")

    # --- keeping lines (rule 6) ----------------------------------------------------------
    def _add(self, stamp: str, prefix: bytes, text: bytes, echo: bool = False) -> None:
        entry = stamp.encode() + b" " + prefix + text
        if self._tail is not None:
            if len(self._tail) == TAIL_LINES:
                self._left_out += 1
            self._tail.append(entry)
            return
        if not echo:
            self._size += len(entry) + 1
            if self._size > MAX_LOG_OCTETS:
                self._tail = deque([entry], maxlen=TAIL_LINES)
                self._capped_at = stamp
                return
        self._lines.append(entry)

    def _finish(self) -> None:
        """Unfinished lines and an unfinished DATA stream, once, at the end."""
        if self._finished or not self.enabled:
            return
        self._finished = True
        stamp = _stamp(self.now())
        for prefix, cutter in ((b"C: ", self._client), (b"S: ", self._server)):
            rest = cutter.rest()
            if rest is not None:
                head, octets = rest
                if cutter is self._client and self._in_data:
                    self._data_lines += 1
                    self._data_octets += octets
                    if self.data_mode != "echo" or self._echo_capped:
                        continue
                shown = _shown(head)
                if octets > len(head):
                    shown += f" ... ({octets - len(head)} more octets)".encode()
                if cutter is self._client and not self._in_data:
                    shown = self._masked(shown)
                self._add(stamp, prefix, shown + b" (no line end)")
        if self._in_data:
            self._in_data = False
            self._end_data(stamp, b", no end of data")

    def lines(self) -> list[bytes]:
        """The log as it would be written (rule 6: head, what was left out, tail)."""
        self._finish()
        lines = self._header + self._lines
        if self._tail is not None:
            if self._left_out:
                lines = lines + [f"{self._capped_at} -- {self._left_out} lines left out here "
                                 f"(the log keeps its first {MAX_LOG_OCTETS} octets and its "
                                 f"last {TAIL_LINES} lines)".encode()]
            lines = lines + list(self._tail)
        return lines

    # --- keeping the log -----------------------------------------------------------------
    def should_keep(self) -> bool:
        if self.mode == "all":
            return True
        if self.mode == "on_error":
            return bool(self.error_kinds) and (self.error_class == "all"
                                               or self.error_class in self.error_kinds)
        return False

    async def close(self, directory: Path,
                    failures: WriteFailures | None = None) -> Path | None:
        """Write the log into `directory` if the settings keep it (rule 2); returns its
        path. A write that fails raises OSError, or is told to `failures`."""
        if not self.should_keep():
            return None
        try:
            return await trio.to_thread.run_sync(self._write, Path(directory))
        except OSError as exc:
            if failures is None:
                raise
            failures.report(Path(directory), exc)
            return None

    def _write(self, directory: Path) -> Path:
        """Write the log under a hidden name, then link it to its own: a reader (an
        administrator's tail, a test) never sees a log half written."""
        content = b"\n".join(self.lines()) + b"\n"
        directory.mkdir(mode=DIRECTORY_MODE, exist_ok=True)      # rule 1
        stem = (f"{self.direction}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(self.started))}"
                f"-{self.name}")
        hidden = directory / f".{stem}-{secrets.token_hex(4)}.tmp"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            number = 1
            while True:
                path = directory / (f"{stem}.log" if number == 1 else f"{stem}-{number}.log")
                try:
                    os.link(hidden, path)
                    return path
                except FileExistsError:
                    number += 1
        finally:
            hidden.unlink(missing_ok=True)


class WriteFailures:
    """Conversation logs that could not be written (rule 1): a scan_error event of rule
    `setting` (the setting that asked for them), at most one per REPORT_SECONDS, the next
    one counting those in between — neither an error per connection nor silence."""

    def __init__(self, events, setting: str):
        self.events = events
        self.setting = setting
        self._last: float | None = None
        self._unreported = 0

    def report(self, directory: Path, exc: OSError) -> None:
        now = trio.current_time()
        if self._last is not None and now - self._last < REPORT_SECONDS:
            self._unreported += 1
            return
        self._last = now
        more, self._unreported = self._unreported, 0
        info = f"a conversation log could not be written to {directory}: {exc.strerror or exc}"
        if more:
            info += f" ({more} more since the last such event)"
        self.events.record(Action.SCAN_ERROR, rule=self.setting, result="not_written",
                           info=info)
