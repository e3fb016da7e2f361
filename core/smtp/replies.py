"""Every SMTP reply Mailmoat's server sends, defined once as a typed value.

What this module owns
    The `Reply` value type (code, enhanced status code, text) and the reply
    table: constants named by code and meaning (`R552_SIZE_EXCEEDED`), plus a
    few builder functions for replies that carry a host name or queue id.

Rules
    1. A reply text exists in exactly one place: here. Policy code picks a
       constant; it never formats "550 ..." itself, and exception text never
       goes into a reply.
    2. Enhanced status codes (RFC 3463) are included on every reply because we
       always advertise ENHANCEDSTATUSCODES (RFC 2034). RFC 2034 §3 exempts
       "the initial greeting and any response to HELO or EHLO", so those carry
       `enhanced=None`; so does 354, since RFC 3463 defines no class 3.
    3. A reply line never contains CR or LF (that would let text inject a
       second reply) and is at most 512 octets with its CRLF
       (RFC 5321 §4.5.3.1.5); `Reply` refuses to exist otherwise.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = [
    "Reply",
    "MAX_REPLY_LINE_OCTETS",
    "R220_READY",
    "R220_READY_TO_START_TLS",
    "R221_BYE",
    "R214_HELP",
    "R250_OK",
    "R250_SENDER_OK",
    "R250_RECIPIENT_OK",
    "R250_QUEUED",
    "R250_HELO",
    "R250_EHLO",
    "R252_VRFY",
    "R354_START_DATA",
    "R421_SHUTTING_DOWN",
    "R421_TOO_MANY_ERRORS",
    "R421_TIMEOUT",
    "R421_SERVICE_NOT_AVAILABLE",
    "R421_TOO_MANY_CONNECTIONS",
    "R451_LOCAL_ERROR",
    "R451_RELAY_DEFERRED",
    "R452_TOO_MANY_RECIPIENTS",
    "R452_INSUFFICIENT_STORAGE",
    "R454_TLS_NOT_AVAILABLE",
    "R500_LINE_TOO_LONG",
    "R500_UNKNOWN_COMMAND",
    "R501_SYNTAX",
    "R502_NOT_IMPLEMENTED",
    "R503_BAD_SEQUENCE",
    "R504_PARAMETER_NOT_IMPLEMENTED",
    "R550_RELAY_DENIED",
    "R552_SIZE_EXCEEDED",
    "R553_BAD_ADDRESS_CHARS",
    "R553_NON_ASCII_ADDRESS",
    "R554_LINE_TOO_LONG_IN_DATA",
    "R554_TOO_MANY_HOPS",
    "R554_NO_VALID_RECIPIENTS",
    "R555_UNKNOWN_PARAMETER",
]

# RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets including CRLF.
MAX_REPLY_LINE_OCTETS = 512

_ENHANCED_RE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: a 3-digit code, an optional RFC 3463 enhanced code and
    its text. `text` is a str for a one-line reply or a tuple of lines for a
    multi-line one (`250-...` continuation lines, RFC 5321 §4.2.1).

    Raises ValueError on construction when the reply could not be sent as is
    (bad code, enhanced class not matching the code, CR/LF in the text, a
    line over 512 octets): that is a bug in whoever built it.
    """

    code: int
    enhanced: str | None
    text: str | tuple[str, ...]

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"reply code out of range: {self.code}")
        if self.enhanced is not None:
            if not _ENHANCED_RE.fullmatch(self.enhanced):
                raise ValueError(f"bad enhanced status code: {self.enhanced!r}")
            if self.enhanced[0] != str(self.code)[0]:
                raise ValueError("enhanced status class must match the reply code class")
        lines = self.lines
        if not lines:
            raise ValueError("a reply needs at least one line")
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ValueError("reply text must not contain CR or LF")
        wire = self._render()
        for raw in wire.split(b"\r\n")[:-1]:
            if len(raw) + 2 > MAX_REPLY_LINE_OCTETS:
                raise ValueError("reply line over 512 octets (RFC 5321 §4.5.3.1.5)")
        # Rendered once: the listener sends the same constant replies many times a second.
        object.__setattr__(self, "_wire", wire)

    @classmethod
    def received(cls, code: int, enhanced: str | None, text: str | tuple[str, ...]) -> Reply:
        """A reply read from a server, which `core/smtp/readers.py` has already made fit
        rule 3 (code 2xx-5xx, enhanced code of its class, no control characters, lines
        cut to fit): built without the checks, rendered only if ever sent. The delivery
        reads several replies per message."""
        reply = object.__new__(cls)
        object.__setattr__(reply, "code", code)
        object.__setattr__(reply, "enhanced", enhanced)
        object.__setattr__(reply, "text", text)
        return reply

    @property
    def lines(self) -> tuple[str, ...]:
        """The text as a tuple of lines (one element for a one-line reply)."""
        return (self.text,) if isinstance(self.text, str) else tuple(self.text)

    @property
    def code_class(self) -> int:
        """2 (positive completion), 3 (intermediate), 4 (transient) or 5 (permanent)."""
        return self.code // 100

    @property
    def is_positive(self) -> bool:
        """True for 2xx and 3xx replies."""
        return self.code_class in (2, 3)

    def to_bytes(self) -> bytes:
        """The reply as it goes on the wire, every line ending in CRLF."""
        try:
            return self._wire
        except AttributeError:          # a received reply
            object.__setattr__(self, "_wire", self._render())
            return self._wire

    def _render(self) -> bytes:
        lines = self.lines
        prefix = f"{self.enhanced} " if self.enhanced else ""
        out = []
        for index, line in enumerate(lines):
            body = f"{prefix}{line}".rstrip(" ")
            if index < len(lines) - 1:
                out.append(f"{self.code}-{body}\r\n")
            else:
                out.append(f"{self.code} {body}\r\n" if body else f"{self.code}\r\n")
        return "".join(out).encode("utf-8")


# --- builders: replies that carry a name -----------------------------------------

# The builders below are cached: each session asks for the same host name's replies.
@functools.lru_cache(maxsize=16)
def R220_READY(hostname: str) -> Reply:  # noqa: N802 - named like the constants
    """The greeting (RFC 5321 §4.3.1); no enhanced code per RFC 2034 §3."""
    return Reply(220, None, f"{hostname} ESMTP Mailmoat")


@functools.lru_cache(maxsize=16)
def R250_HELO(hostname: str) -> Reply:  # noqa: N802
    """Reply to HELO (RFC 5321 §4.1.1.1); no enhanced code per RFC 2034 §3."""
    return Reply(250, None, hostname)


@functools.lru_cache(maxsize=16)
def R250_EHLO(hostname: str, extensions: tuple[str, ...]) -> Reply:  # noqa: N802
    """Multi-line reply to EHLO listing the extensions (RFC 5321 §4.1.1.1)."""
    return Reply(250, None, (hostname, *extensions))


def R250_QUEUED(queue_id: str) -> Reply:  # noqa: N802
    """Final reply after DATA once message and envelope are fsync'd (SPEC §4)."""
    return Reply(250, "2.0.0", f"OK: queued as {queue_id}")


# --- 2xx ------------------------------------------------------------------------
# The extensions, STARTTLS among them, are what EHLO lists: whether STARTTLS is offered
# depends on the settings and on the session, and a HELP naming it could promise a 502.
R214_HELP = Reply(
    214, "2.0.0",
    "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP; extensions: see EHLO",
)
R220_READY_TO_START_TLS = Reply(220, "2.0.0", "Ready to start TLS")  # RFC 3207 §4
R221_BYE = Reply(221, "2.0.0", "Bye")
R250_OK = Reply(250, "2.0.0", "OK")
R250_SENDER_OK = Reply(250, "2.1.0", "Sender OK")
R250_RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
# RFC 5321 §3.5.3: 252 when we will not verify but will accept and try.
R252_VRFY = Reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery")

# --- 3xx ------------------------------------------------------------------------
R354_START_DATA = Reply(354, None, "End data with <CR><LF>.<CR><LF>")

# --- 4xx ------------------------------------------------------------------------
# RFC 5321 §3.8: 421 may be sent at any time; the session ends after it.
R421_SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, closing transmission channel")
R421_TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing transmission channel")
R421_TIMEOUT = Reply(421, "4.4.2", "Timeout, closing transmission channel")
R421_SERVICE_NOT_AVAILABLE = Reply(421, "4.3.2", "Service not available, closing transmission channel")
R421_TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections from your host")
R451_LOCAL_ERROR = Reply(451, "4.3.0", "Local error in processing, try again later")
# A recipient only a refused routing.local entry makes local (core/smtp/policy.py): temporary,
# so the sender retries while the administrator fixes the setting (RFC 3463 4.7.1).
R451_RELAY_DEFERRED = Reply(451, "4.7.1", "Relaying deferred: a routing.local entry matching "
                            "every destination is refused by this version; the administrator "
                            "must fix the setting")
R452_TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")  # RFC 5321 §4.5.3.1.10
R452_INSUFFICIENT_STORAGE = Reply(452, "4.3.1", "Insufficient system storage")
R454_TLS_NOT_AVAILABLE = Reply(454, "4.7.0", "TLS not available due to temporary reason")  # RFC 3207 §4

# --- 5xx ------------------------------------------------------------------------
R500_LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")  # RFC 5321 §4.5.3.1.10
R500_UNKNOWN_COMMAND = Reply(500, "5.5.1", "Command unrecognized")
R501_SYNTAX = Reply(501, "5.5.4", "Syntax error in parameters or arguments")
R502_NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
R503_BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands")
R504_PARAMETER_NOT_IMPLEMENTED = Reply(504, "5.5.4", "Command parameter not implemented")
R550_RELAY_DENIED = Reply(550, "5.7.1", "Relaying denied")
R552_SIZE_EXCEEDED = Reply(552, "5.3.4", "Message size exceeds fixed limit")  # RFC 1870 §6
R553_BAD_ADDRESS_CHARS = Reply(553, "5.1.3", "Address contains characters that are not allowed")
# RFC 6531 §3.5 with the RFC 6533 enhanced code for non-ASCII addresses.
R553_NON_ASCII_ADDRESS = Reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
R554_LINE_TOO_LONG_IN_DATA = Reply(554, "5.6.0", "Message has a line over 1000 octets")
R554_TOO_MANY_HOPS = Reply(554, "5.4.6", "Too many hops: a mail loop")   # RFC 5321 §6.3
R554_NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "No valid recipients")  # RFC 5321 §3.3, RFC 2920 §3.1
R555_UNKNOWN_PARAMETER = Reply(555, "5.5.4", "MAIL FROM/RCPT TO parameter not recognized or not implemented")
