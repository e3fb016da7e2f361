"""The clamd engine (SPEC §3 av.engine "clamd"/"both", av.clamd.address): INSTREAM to a
running clamd over TCP ("host:port") or a unix socket (a path).

Protocol (clamd(8)): send `zINSTREAM\\0`, then chunks of <4-byte big-endian length><data>,
then a zero-length chunk; clamd answers one line `stream: OK`, `stream: <Name> FOUND` or
`... ERROR`, NUL-terminated.

Rules
    1. Every socket operation has a deadline: CONNECT_SECONDS to connect, and a scan ends
       SCAN_SECONDS after it began or at the engine's `deadline`, whichever comes first. The
       `deadline` is what the message being processed may spend on scanning (all its
       parts together; core/pipeline/run.py sets it inside the worker's time limit, SPEC
       §4), so a slow clamd costs the message one scan_error, never a worker timeout.
       How long a stream may be is clamd's own StreamMaxLength, which only its
       administrator knows: every buffer is sent, and clamd says when it is too long
       ("INSTREAM size limit exceeded. ERROR", then it closes the connection, often before
       the stream has all been sent: the reply is read all the same). That is a
       StreamTooLong (a ScanError naming clamd's reply). A fixed limit of our own (25 MiB,
       Debian's packaged StreamMaxLength) held every part between it and size.max_mb whatever clamd accepted
       (content18 B6); `max_stream_octets` keeps one for a caller that wants it (None: none).
    2. Anything that is not a clean OK/FOUND — connection refused, timeout, ERROR, a garbled
       reply, too large — raises ScanError with a one-line reason; the antivirus check turns
       it into a scan_error finding handled by scan.unprocessable. Never "clean" by default.
       A refusal about the one buffer is a StreamRefused (a ScanError): clamd answered the
       stream with an ERROR of its own (`stream: <why> ERROR`, StreamTooLong's size limit)
       or the buffer is over `max_stream_octets`; clamd is there for the next buffer, and
       the check goes on asking it about the message's other parts. Any other ScanError is
       about clamd itself (unreachable, timed out, closed without an answer, a reply that
       is not clamd's INSTREAM answer, the message's scanning time spent): the check asks
       it nothing more for that message (clampartsfix18: an over-long part's refusal left
       the other parts unscanned by clamd, which scan.unprocessable deliver let through).
    3. ClamAV appends `.UNOFFICIAL` to names from third-party databases; it is removed so a
       name is the same whichever engine found it.
    4. clamd names one detection per stream: INSTREAM stops at the first match and has no
       all-match mode (ALLMATCHSCAN reads a file on clamd's own host). `scan_all` therefore
       sends, once a buffer is found infected, each item core/scan/unpack.py takes out of
       it (the members of an ARJ, a cabinet, a Deflate64 zip, ...) as a stream of its own,
       so that every infected one is reported; a clean buffer costs one stream, as before.
       The decomposer's parts (zip, tar, 7z members, attachments) are separate streams
       already (core/pipeline/checks/antivirus.py).
    5. These follow-up streams are bounded, and never undo what the buffer's own stream
       found (review13 B2: one unpacked member over the stream limit turned a found virus
       into a scan_error, which scan.unprocessable may deliver). At most
       MAX_FOLLOW_UP_STREAMS items are taken out (an unpack Budget), so a cabinet of
       thousands of members costs that many connections, not thousands (review13 B7); an
       item clamd refuses as too long (StreamTooLong, rule 1) is passed over, and so is,
       without being sent, every later item at least as long as the shortest one refused;
       another StreamRefused (rule 2) passes over its own item alone; the first
       follow-up that raises a ScanError about clamd itself (clamd gone, the message's
       scanning time spent) ends them, as the check stops asking a failed clamd about a
       message's other parts. The buffer's detection is returned whatever became of
       them: the file is infected either way, and only further names in it may go
       unreported.
    6. Every scan's exchange notes, for the thread it runs in, whether clamd answered
       (`take_contact`), stamped with the wall-clock time it ended: the worker hands the
       message's last one to the core with its outcome (core/pipeline/run.py), and the
       core's status snapshot says from it whether clamd is answering, and since when
       (core/status.py `ClamdHealth`; outcomes arrive in the order workers finish, so the
       stamp, not the arrival, says which exchange is the latest: review14 B6), with no
       probe of its own per message (guide45 finding 3: a mistyped address held every
       message while the Status page said only "Enabled"). A reply, ERROR included, is an
       answer; a connection refused or timed out, or closed without a reply, is not; a
       scan stopped by the message's own deadline (rule 1), or a buffer never sent, notes
       nothing; a StreamTooLong is clamd's answer. The console's PING when Antivirus
       Settings are saved (shared/clamd_wire.py) is not a scan and notes nothing.
    7. Where an address points, the connect and the words for clamd not answering are
       shared/clamd_wire.py's, which the console uses too.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

from core.scan.builtin import Detection
from core.scan.unpack import Budget, expand
from shared import clamd_wire as wire
from shared.clock import SYSTEM_CLOCK

__all__ = ["ClamdEngine", "ScanError", "StreamRefused", "StreamTooLong", "Contact",
           "take_contact"]

CONNECT_SECONDS = 5.0
SCAN_SECONDS = 30.0
CHUNK_OCTETS = 256 * 1024
MAX_REPLY_OCTETS = 4096
MAX_FOLLOW_UP_STREAMS = 32       # per infected buffer (rule 5)


class ScanError(RuntimeError):
    """The scanner could not give an answer (rule 2); `problem`: why clamd did not answer,
    when that is the reason (rule 6), else ""."""

    def __init__(self, message: str, problem: str = ""):
        super().__init__(message)
        self.problem = problem


class StreamRefused(ScanError):
    """This one buffer was not scanned, for a reason of its own (rule 2): clamd answered its
    stream with an ERROR, or it is over `max_stream_octets`. clamd is there for the next."""


class StreamTooLong(StreamRefused):
    """clamd refused a stream longer than its StreamMaxLength (rule 1): it answered, and
    did not scan the buffer."""

    def __init__(self, address: str, octets: int, reply: str):
        super().__init__(f"clamd at {address} did not scan {octets} bytes: {reply} "
                         "(longer than its StreamMaxLength)")
        self.octets = octets


@dataclass(frozen=True)
class Contact:
    """One exchange with clamd at `address` (rule 6): `problem` says why it did not answer,
    in the words of the scan_error ("unreachable: Connection refused"); "" when it did.
    `at`: the wall-clock time the exchange ended."""
    address: str
    problem: str
    at: float

    @property
    def answered(self) -> bool:
        return not self.problem


_contacts = threading.local()       # a worker scans one message at a time per thread


def _note(address: str, problem: str = "") -> None:
    _contacts.last = Contact(address, problem, SYSTEM_CLOCK.now())


def take_contact() -> Contact | None:
    """The last Contact noted in this thread since the last call, or None (rule 6)."""
    contact = getattr(_contacts, "last", None)
    _contacts.last = None
    return contact


class ClamdEngine:
    name = "clamd"

    def __init__(self, address: str, *, connect_seconds: float = CONNECT_SECONDS,
                 scan_seconds: float = SCAN_SECONDS,
                 max_stream_octets: int | None = None, deadline: float | None = None):
        """`deadline`: the time.monotonic() by which every scan must have ended (rule 1);
        None for no limit beyond the per-scan ones. `max_stream_octets`: a buffer longer
        than that is not sent (a ScanError); None: clamd's StreamMaxLength decides."""
        self.address = address
        self.connect_seconds = connect_seconds
        self.scan_seconds = scan_seconds
        self.max_stream_octets = max_stream_octets
        self.deadline = deadline

    def _connect(self, end: float | None = None) -> socket.socket:
        """A connected socket; `end` (time.monotonic()) bounds the connect as well."""
        seconds = self.connect_seconds if end is None else min(self.connect_seconds, _left(end))
        try:
            sock = wire.connect(self.address, seconds)
        except ValueError as exc:           # an address wire.parse_address cannot read
            raise ScanError(str(exc)) from None
        except OSError as exc:
            if end is not None and time.monotonic() >= end:
                raise socket.timeout from None      # the scan's time ran out, not clamd
            raise self._unanswered(wire.unreachable(exc)) from None
        sock.settimeout(self.scan_seconds)
        return sock

    def _unanswered(self, problem: str) -> ScanError:
        """The ScanError for clamd not answering, noted as such (rule 6)."""
        _note(self.address, problem)
        return ScanError(f"clamd at {self.address} {problem}", problem)

    def scan(self, data: bytes, hint: str | None = None, decompose=None) -> Detection | None:
        """Detection or None; ScanError when clamd gives no clean answer (rule 2)."""
        if self.max_stream_octets is not None and len(data) > self.max_stream_octets:
            raise StreamRefused(f"{len(data)} bytes exceed the clamd stream limit "
                                f"({self.max_stream_octets})")
        end = time.monotonic() + self.scan_seconds
        if self.deadline is not None and self.deadline < end:
            end = self.deadline
        try:
            with self._connect(end) as sock:
                try:
                    _send_stream(sock, data, end)
                except (BrokenPipeError, ConnectionResetError) as exc:
                    cut_short = exc         # clamd may have answered and closed (rule 1)
                else:
                    cut_short = None
                reply = b""
                while not reply.endswith(b"\0") and len(reply) < MAX_REPLY_OCTETS:
                    sock.settimeout(_left(end))
                    try:
                        more = sock.recv(1024)
                    except ConnectionResetError:
                        if cut_short is None:
                            raise
                        more = b""
                    if not more:
                        break
                    reply += more
                if not reply and cut_short is not None:
                    raise cut_short
        except socket.timeout:
            if end == self.deadline:        # the message's time, not clamd's (rule 6)
                raise ScanError(f"clamd at {self.address} did not answer in the time left "
                                "to scan this message") from None
            raise self._unanswered(wire.TIMED_OUT) from None
        except OSError as exc:
            raise self._unanswered(wire.failed(exc)) from None
        text = reply.rstrip(b"\0\n").decode("utf-8", "replace")
        if not text:
            raise self._unanswered(wire.NO_ANSWER)
        _note(self.address)
        if text.endswith("size limit exceeded. ERROR"):
            raise StreamTooLong(self.address, len(data), text)
        return parse_reply(text, self.address)

    def scan_all(self, data: bytes, hint: str | None = None,
                 decompose=None) -> list[Detection]:
        """Every detection in `data` (rules 4-5); ScanError as `scan`, for `data`'s own
        stream only: once that has found something, the result holds it."""
        found = self.scan(data, hint)
        if found is None:
            return []
        inner = []
        refused = None                  # the shortest item clamd refused as too long
        for label, item in expand(data, decompose, Budget(items=MAX_FOLLOW_UP_STREAMS)):
            if self.max_stream_octets is not None and len(item) > self.max_stream_octets \
                    or refused is not None and len(item) >= refused:
                continue
            try:
                detection = self.scan(item)
            except StreamTooLong:
                refused = len(item) if refused is None else min(refused, len(item))
                continue
            except StreamRefused:
                continue
            except ScanError:
                break
            if detection is not None:
                inner.append(Detection(detection.name, detection.engine, label))
        if any(d.name == found.name for d in inner):
            return inner                # the stream's match is one of the items inside it
        return [found, *inner]


def _send_stream(sock: socket.socket, data: bytes, end: float) -> None:
    """INSTREAM: the command, `data` in chunks, the zero-length chunk that ends it."""
    sock.settimeout(_left(end))
    sock.sendall(b"zINSTREAM\0")
    view = memoryview(data)
    for start in range(0, len(view), CHUNK_OCTETS):
        chunk = view[start:start + CHUNK_OCTETS]
        sock.settimeout(_left(end))
        sock.sendall(struct.pack(">I", len(chunk)) + chunk)
    sock.settimeout(_left(end))
    sock.sendall(struct.pack(">I", 0))


def _left(end: float) -> float:
    """Seconds until `end`; socket.timeout once it has passed."""
    seconds = end - time.monotonic()
    if seconds <= 0:
        raise socket.timeout
    return seconds


def parse_reply(text: str, address: str = "clamd") -> Detection | None:
    _, _, result = text.partition(": ")
    if not text:
        raise ScanError(f"clamd at {address} {wire.NO_ANSWER}")
    if result == "OK":
        return None
    if result.endswith(" FOUND"):
        name = result[:-len(" FOUND")].strip()
        return Detection(name.removesuffix(".UNOFFICIAL"), "clamd")
    if text.startswith("stream: ") and text.endswith(" ERROR"):
        raise StreamRefused(f"clamd at {address}: {text[:200]}")      # this stream (rule 2)
    raise ScanError(f"clamd at {address}: {text[:200]}")
