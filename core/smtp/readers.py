"""Readers: cut a receive buffer into command lines, message content or replies.

What this module owns
    Framing. Each reader consumes bytes from a shared `bytearray` and returns
    one unit (a line, a chunk of content, a reply) or None for "need data".

Rules
    1. Memory is bounded by the line limit: a reader never waits for the end
       of a line longer than its limit; it discards the rest of that line and
       reports it when the line ends, so the stream stays in sync.
    2. A line ends at LF. CRLF is the standard ending; a bare LF is accepted as
       a line end (normalised to CRLF in message content) because clients send
       it, but it never helps to end DATA: only the literal sequence
       CRLF "." CRLF ends message content (SMTP smuggling defence; the same
       rule as Postfix's smtpd_forbid_bare_newline=normalize). A bare CR is
       ordinary content and never a line end.
    3. Readers do not raise on any input bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.smtp.replies import Reply

__all__ = ["LINE_TOO_LONG", "CommandReader", "DataReader", "DataResult", "ReplyReader",
           "ReplyError"]


class _LineTooLong:
    def __repr__(self) -> str:
        return "LINE_TOO_LONG"


LINE_TOO_LONG = _LineTooLong()


class CommandReader:
    """Command lines of at most `max_line_octets` octets, ending included
    (RFC 5321 §4.5.3.1.4). next_line() returns the line without its ending,
    LINE_TOO_LONG once an overlong line has ended, or None (need data)."""

    def __init__(self, max_line_octets: int) -> None:
        self.max_line_octets = max_line_octets
        self._discarding = False

    def next_line(self, buffer: bytearray) -> bytes | _LineTooLong | None:
        newline = buffer.find(b"\n")
        if newline < 0:
            if len(buffer) >= self.max_line_octets:
                # Even an LF as the next byte would make it too long.
                self._discarding = True
                buffer.clear()
            return None
        line = bytes(buffer[:newline])
        del buffer[: newline + 1]
        if self._discarding or newline + 1 > self.max_line_octets:
            self._discarding = False
            return LINE_TOO_LONG
        return line[:-1] if line.endswith(b"\r") else line


@dataclass
class DataResult:
    """What DataReader.read() found: content to emit and whether DATA ended."""

    chunk: bytes
    is_complete: bool


class DataReader:
    """Message content after a 354 (RFC 5321 §4.1.1.4), dot-unstuffed
    (§4.5.2), lines normalised to CRLF. Lines over `max_line_octets`
    (§4.5.3.1.6) and content past `max_message_octets` are counted but not
    returned; reading goes on to the end-of-data marker either way."""

    def __init__(self, max_line_octets: int, max_message_octets: int | None) -> None:
        self.max_line_octets = max_line_octets
        self.max_message_octets = max_message_octets
        self.size = 0
        self.line_too_long = False
        self.size_exceeded = False
        self.bare_line_endings = False
        # The DATA command line ended in CRLF, so a first line of "." ends data.
        self._previous_ended_crlf = True
        self._discarding = False  # inside an overlong line
        self._discarded_cr = False  # last discarded byte was CR

    @property
    def is_limited(self) -> bool:
        return self.line_too_long or self.size_exceeded

    def _count(self, octets: int) -> None:
        self.size += octets
        if self.max_message_octets is not None and self.size > self.max_message_octets:
            self.size_exceeded = True

    def read(self, buffer: bytearray) -> DataResult:
        """Consume every complete line in `buffer`; keep a partial line unless
        it is already over the limit (then drop it and skip to its end)."""
        return self._read_plain(buffer) or self._read_lines(buffer)

    def _read_plain(self, buffer: bytearray) -> DataResult | None:
        """The common case in bulk, with bytes methods instead of a loop per line: every
        line ends in CRLF, none is too long, the size limit is not reached. None when any of
        that does not hold (or a limit was hit before): `_read_lines` decides then. Same
        result as `_read_lines`; tests/unit/smtp compare the two on random input."""
        if self._discarding or self.is_limited or not self._previous_ended_crlf:
            return None
        last = buffer.rfind(b"\n")
        if last < 0 or len(buffer) - last - 1 >= self.max_line_octets:
            return None
        region = bytes(buffer[:last + 1])
        crlf = region.count(b"\r\n")
        if region.count(b"\n") != crlf or region.count(b"\r") != crlf:
            return None
        if len(region) > self.max_line_octets \
                and max(map(len, region.split(b"\n"))) >= self.max_line_octets:
            return None         # a line at or over the limit: `_read_lines` measures it
        complete = False
        if region.startswith(b".\r\n"):
            region, complete = b"", True
        else:
            marker = region.find(b"\r\n.\r\n")
            if marker >= 0:
                region, complete = region[:marker + 2], True
        consumed = len(region) + 3 if complete else len(region)
        content = region.replace(b"\r\n.", b"\r\n")
        if content.startswith(b"."):
            content = content[1:]
        if self.max_message_octets is not None \
                and self.size + len(content) > self.max_message_octets:
            return None
        self.size += len(content)
        del buffer[:consumed]
        return DataResult(content, complete)

    def _read_lines(self, buffer: bytearray) -> DataResult:
        out: list[bytes] = []
        pos = 0
        end = len(buffer)
        complete = False
        while pos < end:
            newline = buffer.find(b"\n", pos)
            if newline < 0:
                rest = end - pos
                # Too long already if even a CRLF next would not fit; a leading dot is the
                # transparency one and does not count (RFC 5321 §4.5.3.1.6).
                stuffing = 1 if buffer[pos] == 0x2E else 0
                if self._discarding or rest - stuffing >= self.max_line_octets:
                    self.line_too_long = True
                    self._discarding = True
                    self._discarded_cr = buffer[end - 1] == 0x0D
                    self._count(rest)
                    pos = end
                break
            line = bytes(buffer[pos:newline])
            pos = newline + 1
            if self._discarding:
                self._discarding = False
                self._previous_ended_crlf = line.endswith(b"\r") or (not line and self._discarded_cr)
                self._count(len(line) + 1)
                continue
            ended_crlf = line.endswith(b"\r")
            content = line[:-1] if ended_crlf else line
            if not ended_crlf:
                self.bare_line_endings = True
            if content == b"." and ended_crlf and self._previous_ended_crlf:
                complete = True
                break
            self._previous_ended_crlf = ended_crlf
            if content.startswith(b"."):
                content = content[1:]  # RFC 5321 §4.5.2 transparency
            if len(content) + 2 > self.max_line_octets:    # the dot not counted (§4.5.3.1.6)
                self.line_too_long = True
            self._count(len(content) + 2)
            if not self.is_limited:
                out.append(content)
                out.append(b"\r\n")
        del buffer[:pos]
        return DataResult(b"".join(out), complete)


class ReplyError(Exception):
    """The server sent something that is not a reply (client side)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


_REPLY_LINE_RE = re.compile(rb"([2-5][0-9][0-9])(?:([ -])(.*))?", re.DOTALL)
_ENHANCED_PREFIX_RE = re.compile(r"([245]\.\d{1,3}\.\d{1,3})(?: (.*)|$)", re.DOTALL)


class ReplyReader:
    """Replies from a server (RFC 5321 §4.2.1): `ddd-text` continuation lines
    then `ddd text`. Enhanced codes (RFC 2034) are split off when the first
    line has one of the reply's class. next_reply() returns a Reply or None;
    raises ReplyError on garbage (the client turns it into an event)."""

    def __init__(self, max_line_octets: int, max_lines: int) -> None:
        self.max_line_octets = max_line_octets
        self.max_lines = max_lines
        self._lines: list[tuple[bytes, bytes]] = []

    def next_reply(self, buffer: bytearray) -> Reply | None:
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                if len(buffer) >= self.max_line_octets:
                    raise ReplyError("reply_too_long", "reply line too long")
                return None
            if newline + 1 > self.max_line_octets:
                raise ReplyError("reply_too_long", "reply line too long")
            line = bytes(buffer[:newline]).rstrip(b"\r")
            del buffer[: newline + 1]
            match = _REPLY_LINE_RE.fullmatch(line)
            if not match:
                raise ReplyError("reply_syntax", f"not a reply line: {line[:60]!r}")
            code, separator, text = match.group(1), match.group(2), match.group(3) or b""
            if self._lines and self._lines[0][0] != code:
                raise ReplyError("reply_syntax", "reply code changed inside a multi-line reply")
            self._lines.append((code, text))
            if len(self._lines) > self.max_lines:
                raise ReplyError("reply_too_long", "too many lines in one reply")
            if separator != b"-":
                lines, self._lines = self._lines, []
                return _build_reply(lines)


def _build_reply(lines: list[tuple[bytes, bytes]]) -> Reply:
    code = int(lines[0][0])
    texts = [text.decode("utf-8", errors="replace") for _, text in lines]
    texts = [_CONTROL_RE.sub("?", text) for text in texts]
    enhanced = None
    first = _ENHANCED_PREFIX_RE.fullmatch(texts[0])
    if first and first.group(1)[0] == str(code)[0]:
        enhanced = first.group(1)
        stripped = []
        for text in texts:
            match = _ENHANCED_PREFIX_RE.fullmatch(text)
            stripped.append((match.group(2) or "") if match and match.group(1) == enhanced else text)
        texts = stripped
    # Received text is kept for logs and bounces; cut what would not fit in a
    # line we could send ourselves (RFC 5321 §4.5.3.1.5) rather than refuse it.
    room = 512 - 6 - (len(enhanced) + 1 if enhanced else 0)
    texts = [_truncate_utf8(text, room) for text in texts]
    text: str | tuple[str, ...] = texts[0] if len(texts) == 1 else tuple(texts)
    return Reply.received(code, enhanced, text)


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _truncate_utf8(text: str, octets: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= octets:
        return text
    return encoded[:octets].decode("utf-8", errors="ignore")
