"""Parsing one SMTP command line: verb, argument, MAIL/RCPT paths and parameters.

What this module owns
    Turning the bytes of one command line (CRLF already removed) into a verb
    and typed arguments, following the grammar of RFC 5321 §4.1.2 with the
    SMTPUTF8 extensions of RFC 6531 §3.3.

Rules
    1. Pure functions; a malformed line raises `PeerError`, which carries the
       reply and violation kind. `PeerError` never leaves the protocol: the
       connection turns it into a `ProtocolViolation` event.
    2. Strict where RFC 5321 is: a path needs its angle brackets (§4.1.2
       "Path = '<' ... '>'"); `MAIL FROM:user@example.com` gets 501. Lenient
       where practice demands it: spaces after the colon (`MAIL FROM: <a@b>`)
       and several spaces between parameters are accepted.
    3. Never decides policy: whether an address is allowed is for the app.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from core.smtp import replies as R
from core.smtp.events import ViolationKind
from core.smtp.replies import Reply
from shared.mailbox import DOT_STRING, QUOTED_STRING, UTF8_NON_ASCII

__all__ = ["PeerError", "KNOWN_VERBS", "split_command", "parse_hello", "parse_path_argument",
           "parse_mail_params", "has_non_ascii", "unrelayable"]

# Verbs the server knows. UNSUPPORTED_VERBS are recognised but not implemented,
# so they get 502, not 500 (RFC 5321 §4.2.4).
KNOWN_VERBS = frozenset(
    {"EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP",
     "STARTTLS"}
)
UNSUPPORTED_VERBS = frozenset({"AUTH", "BDAT", "ETRN", "TURN", "ATRN", "SEND", "SOML", "SAML"})


class PeerError(Exception):
    """A peer's command is malformed; carries the reply to send."""

    def __init__(self, kind: ViolationKind, reply: Reply, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.reply = reply
        self.detail = detail


def _syntax(detail: str) -> PeerError:
    return PeerError(ViolationKind.SYNTAX, R.R501_SYNTAX, detail)


@dataclass(frozen=True)
class CommandLine:
    """A command line split at the first space: `verb` upper-cased ASCII
    ("" if not a plausible verb), `argument` the raw rest (bytes)."""

    verb: str
    argument: bytes


_VERB_RE = re.compile(rb"[A-Za-z]{1,16}")


def split_command(line: bytes) -> CommandLine:
    """Split a command line (without its line ending). Trailing spaces and
    tabs are ignored. A verb that is not 1-16 ASCII letters becomes ""."""
    line = line.rstrip(b" \t")
    verb, _, argument = line.partition(b" ")
    if not _VERB_RE.fullmatch(verb):
        return CommandLine("", argument)
    return CommandLine(verb.decode("ascii").upper(), argument.lstrip(b" "))


def decode_argument(argument: bytes) -> str:
    """UTF-8 text of an argument; NUL, other controls or bad UTF-8 → 501."""
    try:
        text = argument.decode("utf-8")
    except UnicodeDecodeError:
        raise _syntax("argument is not valid UTF-8") from None
    if _CONTROL_RE.search(text):
        raise _syntax("control character (NUL, CR, ...) in argument")
    return text


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def has_non_ascii(text: str) -> bool:
    return not text.isascii()


def parse_hello(argument: bytes) -> str:
    """The domain (or address literal) of HELO/EHLO. Lenient: any non-empty
    text without controls, since clients send all sorts (RFC 5321 §4.1.4 says
    a server must not refuse on a mismatched name)."""
    text = decode_argument(argument).strip()
    if not text:
        raise _syntax("HELO/EHLO needs a domain")
    return text


# --- paths (RFC 5321 §4.1.2, RFC 6531 §3.3) -------------------------------------
# the local part's syntax is shared/mailbox.py's, which the sender lists' entries follow
_U = UTF8_NON_ASCII  # allowed by RFC 6531; checked later
_LET_DIG = rf"[A-Za-z0-9{_U}]"
_SUB_DOMAIN = rf"{_LET_DIG}(?:[A-Za-z0-9\-{_U}]*{_LET_DIG})?"
_DOMAIN = rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*"
_ADDRESS_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"
_MAILBOX_RE = re.compile(rf"(?:{DOT_STRING}|{QUOTED_STRING})@(?:{_DOMAIN}|{_ADDRESS_LITERAL})")
# Angle brackets are legal in a quoted local part ("<x>"@example.com), but the delivery
# client never sends them (core/smtp/client.py: a path ends at ">" for too many servers), so
# such an address would be accepted and then retried for days, never delivered.
_UNRELAYABLE = re.compile(r"[<>]")


def unrelayable(address: str) -> bool:
    """Whether `address` is one this gateway could accept but never deliver (553 5.1.3)."""
    return _UNRELAYABLE.search(address) is not None
_ROUTE_RE = re.compile(rf"@{_DOMAIN}(?:,@{_DOMAIN})*:")


def _find_path_end(text: str) -> int:
    """Index of the '>' closing a path that starts at text[0] == '<', honouring
    quoted strings; raises 501 for unbalanced or nested brackets."""
    in_quotes = False
    index = 1
    while index < len(text):
        char = text[index]
        if in_quotes:
            if char == "\\":
                index += 1
            elif char == '"':
                in_quotes = False
        elif char == '"':
            in_quotes = True
        elif char == "<":
            raise _syntax("nested '<' in path")
        elif char == ">":
            return index
        index += 1
    raise _syntax("path without closing '>'")


def parse_path_argument(argument: bytes, keyword: str, *, is_mail: bool
                        ) -> tuple[str, list[tuple[str, str | None]]]:
    """Parse `FROM:<path> params` (keyword "FROM") or `TO:<path> params`.

    Returns (address, [(PARAM_NAME, value or None), ...]); the address has any
    source route removed (RFC 5321 §4.1.1.3 says to ignore it) and is "" for
    the null sender `<>` (MAIL only). Raises PeerError(501) on bad syntax.
    """
    text = decode_argument(argument)
    head = text[: len(keyword) + 1]
    if head.upper() != keyword + ":":
        raise _syntax(f"expected {keyword}:<address>")
    rest = text[len(keyword) + 1:].lstrip(" ")
    if not rest.startswith("<"):
        raise _syntax("address must be in angle brackets (RFC 5321 §4.1.2)")
    end = _find_path_end(rest)
    path, tail = rest[1:end], rest[end + 1:]
    if tail and not tail.startswith(" "):
        raise _syntax("text after '>' must be parameters separated by a space")
    address = _parse_path(path, is_mail=is_mail)
    return address, _parse_params(tail)


def _parse_path(path: str, *, is_mail: bool) -> str:
    if path == "":
        if is_mail:
            return ""  # null reverse-path (RFC 5321 §4.5.5)
        raise _syntax("null path is only valid in MAIL FROM")
    route = _ROUTE_RE.match(path)
    if route:
        path = path[route.end():]
    if not is_mail and path.lower() == "postmaster":
        return path  # RFC 5321 §4.1.1.3: <Postmaster> without domain must be accepted
    if not _MAILBOX_RE.fullmatch(path):
        raise _syntax("malformed mailbox")
    domain = path.rpartition("@")[2]
    if domain.startswith("[") and not _is_address_literal(domain[1:-1]):
        raise _syntax("malformed address literal")
    return path


def _is_address_literal(content: str) -> bool:
    """RFC 5321 §4.1.3: an IPv4 address, or "IPv6:" and an IPv6 address. A general literal
    ("tag:content") names a standardized tag, and IPv6 is the only one registered, so no
    mail could ever reach such an address, nor a bounce the sender it names."""
    if content[:5].upper() == "IPV6:":
        if "%" in content:      # RFC 5321's IPv6-addr has no zone index; Python's parser does
            return False
        try:
            ipaddress.IPv6Address(content[5:])
        except ValueError:
            return False
        return True
    # Snum is 1*3DIGIT up to 255, so "010" is one (Python's IPv4Address refuses it)
    return (_IPV4_LITERAL.fullmatch(content) is not None
            and all(int(snum) <= 255 for snum in content.split(".")))


_IPV4_LITERAL = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


_PARAM_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+))?")


def _parse_params(tail: str) -> list[tuple[str, str | None]]:
    params: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for token in tail.split():
        match = _PARAM_RE.fullmatch(token)
        if not match:
            raise _syntax(f"malformed parameter {token[:40]!r}")
        name = match.group(1).upper()
        if name in seen:
            raise _syntax(f"duplicate parameter {name}")
        seen.add(name)
        params.append((name, match.group(2)))
    return params


def parse_mail_params(raw: list[tuple[str, str | None]]) -> dict:
    """Interpret MAIL FROM parameters: SIZE (RFC 1870), BODY (RFC 6152),
    SMTPUTF8 (RFC 6531). Unknown ones → 555 (RFC 5321 §4.1.1.11);
    BODY=BINARYMIME needs CHUNKING, which we do not offer → 504."""
    params: dict = {}
    for name, value in raw:
        if name == "SIZE":
            if value is None or not value.isascii() or not value.isdigit() or len(value) > 20:
                raise _syntax("SIZE needs 1 to 20 digits (RFC 1870 §3)")
            params["SIZE"] = int(value)
        elif name == "BODY":
            body = (value or "").upper()
            if body == "BINARYMIME":
                raise PeerError(ViolationKind.PARAMETER_NOT_IMPLEMENTED,
                                R.R504_PARAMETER_NOT_IMPLEMENTED, "BODY=BINARYMIME needs CHUNKING")
            if body not in ("7BIT", "8BITMIME"):
                raise _syntax("BODY must be 7BIT or 8BITMIME (RFC 6152 §2)")
            params["BODY"] = body
        elif name == "SMTPUTF8":
            if value is not None:
                raise _syntax("SMTPUTF8 takes no value (RFC 6531 §3.4)")
            params["SMTPUTF8"] = True
        else:
            raise PeerError(ViolationKind.UNKNOWN_PARAMETER, R.R555_UNKNOWN_PARAMETER,
                            f"unknown MAIL parameter {name}")
    return params


def check_no_rcpt_params(raw: list[tuple[str, str | None]]) -> None:
    """We advertise no RCPT extension (no DSN), so any parameter → 555."""
    if raw:
        raise PeerError(ViolationKind.UNKNOWN_PARAMETER, R.R555_UNKNOWN_PARAMETER,
                        f"unknown RCPT parameter {raw[0][0]}")
