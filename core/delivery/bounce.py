"""Delivery status notifications: the bounce and the one-time delay notice (RFC 3464).

What this module owns
    `compose_dsn(...)` -> the bytes of a multipart/report (report-type=delivery-status)
    message to the original sender: a human-readable text/plain part, the
    message/delivery-status part (per-message fields, then one block per recipient with
    Final-Recipient, Action failed|delayed, Status, Remote-MTA, Diagnostic-Code), and the
    original message's headers as text/rfc822-headers, or message/global-headers when they
    hold UTF-8 (RFC 6533 §6.3; not the body: a bounce must not carry a virus or a large
    attachment back). `should_notify(envelope)` says whether a DSN may be sent at all.

Rules
    1. Bounces never bounce: no DSN for a message with the null sender `<>` or for a
       message that is itself a bounce/notice (RFC 5321 §4.5.5, RFC 3464 §2). The DSN is
       sent with the null sender (the caller submits it with sender "").
    2. From is the address of `smtp.notify_from` (with its name, if it has one), else
       "<notify_from> <MAILER-DAEMON@hostname>"; a name that is not ASCII is RFC 2047
       encoded words. Auto-Submitted: auto-replied (RFC 3834).
    3. Status comes from the remote reply's enhanced code when it has one, else from the
       reply class (5.0.0 / 4.0.0); Diagnostic-Code is "smtp; <code> <text>" for remote
       replies and "x-mailmoat; <text>" for our own (RFC 3464 §2.3.6). A report's `reason`,
       when it has one, is what the human-readable part says instead of the diagnostic.
       An smtp diagnostic is the reply as the remote MTA gave it, and only that: a note
       delivery keeps beside it (a report's `note`: a backup MX's refusal after the
       primary's 4xx, core/delivery/deliver.py rule 1) goes in the human-readable part,
       after the reply (`with_note`, the one form of it, which the events show too). It
       once went into the Diagnostic-Code (outbound19 C1), then was folded into the reply's
       text and cut off again at its first " (then ", which cut a reply of that form short
       as well (review19 r2 R4, D1).
    4. The message/delivery-status part is 7-bit and never holds an RFC 2047 encoded-word:
       an address with UTF-8 is "utf-8; <utf-8-addr-xtext>" (RFC 6533 §3: \\x{HEX} for
       each character outside QCHAR), and any other non-ASCII character in a field is
       written the same way. Original-Recipient is not written: ORCPT is not kept.
    5. A DSN to a sender address with UTF-8 travels with SMTPUTF8 (its envelope asks for it:
       QueueManager.submit_generated), to next hops that take 8-bit content too (RFC 6531
       §3.1: SMTPUTF8 comes with 8BITMIME). It is an internationalised DSN (RFC 6533): To
       is the address in UTF-8 (RFC 6532 §3.2; RFC 2047 §5 allows no encoded-word in an
       address), the status part is message/global-delivery-status in 8bit, with UTF-8 as it
       is ("utf-8; <utf-8-addr-unitext>"). Every other DSN keeps rule 4.
    6. Original headers with UTF-8 go as message/global-headers in 8bit (RFC 6533 §6.3:
       8bit "whenever possible"), whoever the DSN goes to: readers parse a message/* part
       as a header section (Python's email package does), not as base64 to decode first.
       A next hop without 8BITMIME gets the part in base64 (core/delivery/downgrade.py
       rule 4: unlike message/rfc822, RFC 6533 §6 lets message/global-headers be encoded),
       as docs/operations.md says. This rule once said it went "as it is" (outbound19 C2).
    7. Lines end in CRLF (GENERATED_LINESEP, which core/notify.py's alerts and
       notifications use too): mail the core writes is spooled as it goes on the wire, so
       its size, the SIZE= it is announced with (RFC 1870 §3: "including CR-LF pairs") and
       the events' figures are the octets sent. Non-ASCII text goes in a base64 text part.
       QueueManager.submit_generated, where all generated mail enters the spool, makes any
       other line end CRLF (review19 r2 D2), so a generator that forgets cannot bring the
       SIZE= mismatch back.

Never: read files, the clock or settings itself — everything arrives as arguments.
"""

from __future__ import annotations

import email.policy
import email.utils
import io
from collections.abc import Sequence
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from shared.clock import mail_date
from shared.settings_addresses import Sender
from shared.spool import Envelope

__all__ = ["RecipientReport", "compose_dsn", "should_notify", "dsn_from_address",
           "status_of", "typed_address", "with_note", "MAX_HEADER_OCTETS",
           "GENERATED_LINESEP"]

MAX_HEADER_OCTETS = 64 * 1024      # of the original headers quoted in a DSN
GENERATED_LINESEP = "\r\n"         # rule 7
_POLICY = email.policy.compat32.clone(linesep=GENERATED_LINESEP, max_line_length=78)


@dataclass(frozen=True)
class RecipientReport:
    """What happened to one recipient, for its DSN block."""
    address: str
    action: str                     # "failed" | "delayed"
    status: str                     # RFC 3463, e.g. "5.1.1"
    diagnostic: str | None = None   # the remote reply "550 5.1.1 no such user", or our text
    remote_mta: str | None = None   # host name of the next hop that answered
    is_remote_reply: bool = True    # diagnostic came from an SMTP reply (Diagnostic-Code: smtp)
    reason: str | None = None       # for the human-readable part, when not the diagnostic
    note: str | None = None         # delivery's, after the diagnostic in that part (rule 3)


def with_note(text: str, note: str | None) -> str:
    """`text` (a remote reply, or our error) with delivery's `note` after it, as the events
    and the human-readable part of a DSN show them; `text` itself when there is none
    (rule 3)."""
    return f"{text} (then {note})" if note else text


def should_notify(envelope: Envelope) -> bool:
    """True when a bounce or delay notice may go to this message's sender (rule 1)."""
    return bool(envelope.sender) and not envelope.is_bounce


def status_of(code: int, enhanced: str | None) -> str:
    """The RFC 3463 status for a reply: its enhanced code, else the class default."""
    if enhanced and enhanced[0] == str(code)[0]:
        return enhanced
    return f"{code // 100}.0.0" if code // 100 in (4, 5) else "5.0.0"


def dsn_from_address(notify_from: str | None, hostname: str) -> str:
    """The From header of a DSN (rule 2), ASCII."""
    name, address = Sender.parts(notify_from) if notify_from else ("Mail Delivery System", None)
    return email.utils.formataddr((name, address or f"MAILER-DAEMON@{hostname}"),
                                  charset="utf-8")


def compose_dsn(*, envelope: Envelope, original_headers: bytes,
                reports: Sequence[RecipientReport], hostname: str, notify_from: str | None,
                now: float, retry_until: float | None = None) -> bytes:
    """The DSN message for *reports* (all "failed" or all "delayed").

    Raises ValueError when *reports* is empty or mixes actions (a bug in the caller).
    """
    actions = {r.action for r in reports}
    if not reports or len(actions) != 1 or not actions <= {"failed", "delayed"}:
        raise ValueError("a DSN needs reports that are all 'failed' or all 'delayed'")
    is_delay = actions == {"delayed"}
    is_global = not envelope.sender.isascii()                           # rule 5
    report = MIMEMultipart("report", report_type="delivery-status", policy=_POLICY)
    report["From"] = dsn_from_address(notify_from, hostname)
    report["To"] = _octets(envelope.sender) if is_global else envelope.sender
    report["Subject"] = ("Delivery delayed: still trying" if is_delay
                         else "Undelivered mail returned to sender")
    report["Date"] = mail_date(now)
    report["Message-ID"] = email.utils.make_msgid("dsn", domain=hostname)
    report["Auto-Submitted"] = "auto-replied"
    report.preamble = "This is a MIME-encapsulated delivery status notification."
    report.attach(MIMEText(_human_text(envelope, reports, hostname, is_delay, retry_until),
                           "plain", "us-ascii" if _is_ascii(reports, envelope) else "utf-8",
                           policy=_POLICY))
    report.attach(_delivery_status(envelope, reports, hostname, now, retry_until, is_global))
    report.attach(_headers_part(original_headers))
    out = io.BytesIO()
    _Generator(out, mangle_from_=False, policy=_POLICY).flatten(report)
    return out.getvalue()


def _human_text(envelope: Envelope, reports: Sequence[RecipientReport], hostname: str,
                is_delay: bool, retry_until: float | None) -> str:
    lines = [f"This is the mail system at host {hostname}.", ""]
    if is_delay:
        lines += ["Your message could not be delivered yet to the recipients below.",
                  "This is only a warning; you do not need to send the message again."]
        if retry_until is not None:
            lines.append("Delivery will be tried until "
                         f"{mail_date(retry_until)}.")
    else:
        lines += ["I'm sorry to have to inform you that your message could not",
                  "be delivered to one or more recipients."]
    lines += ["", f"Queue id: {envelope.queue_id}", ""]
    for r in reports:
        if r.reason:
            last = f"; last error: {with_note(r.diagnostic, r.note)}" if r.diagnostic else ""
            where = f" (from {r.remote_mta})" if r.diagnostic and r.remote_mta else ""
            lines.append(f"<{r.address}>: {r.reason}{last}{where}")
            continue
        reason = with_note(r.diagnostic, r.note) if r.diagnostic else "no reason given"
        where = f" (from {r.remote_mta})" if r.remote_mta else ""
        lines.append(f"<{r.address}>: {reason}{where}")
    return "\r\n".join(lines) + "\r\n"


def _delivery_status(envelope: Envelope, reports: Sequence[RecipientReport], hostname: str,
                     now: float, retry_until: float | None, is_global: bool) -> Message:
    """message/delivery-status: the email package wants a list of header blocks. Global
    (rule 5): message/global-delivery-status, the blocks as 8-bit text."""
    address, text = (_unitext_address, _unitext) if is_global else (typed_address, _xtext)
    per_message = Message(policy=_POLICY)
    per_message["Reporting-MTA"] = f"dns; {hostname}"
    per_message["X-Mailmoat-Queue-ID"] = envelope.queue_id
    per_message["Arrival-Date"] = mail_date(envelope.received_at)
    blocks = [per_message]
    for r in reports:
        block = Message(policy=_POLICY)
        block["Final-Recipient"] = address(r.address)
        block["Action"] = r.action
        block["Status"] = r.status
        if r.remote_mta:
            block["Remote-MTA"] = f"dns; {text(r.remote_mta, _TEXT_CHARS)}"
        if r.diagnostic:
            diagnostic = text(" ".join(r.diagnostic.split()), _TEXT_CHARS)    # rule 3
            block["Diagnostic-Code"] = (f"{'smtp' if r.is_remote_reply else 'x-mailmoat'}; "
                                        f"{diagnostic}")
        block["Last-Attempt-Date"] = mail_date(now)
        if r.action == "delayed" and retry_until is not None:
            block["Will-Retry-Until"] = mail_date(retry_until)
        blocks.append(block)
    part = Message(policy=_POLICY)
    if is_global:
        # unfolded: a field of UTF-8 is not folded by the email package, and a reply is
        # one line of at most 512 octets (RFC 5321 §4.5.3.1.5)
        lines = ["\r\n".join(f"{name}: {value}" for name, value in b.items()) + "\r\n"
                 for b in blocks]
        _set_8bit(part, "message/global-delivery-status", "\r\n".join(lines))
        return part
    part.set_type("message/delivery-status")
    part.set_payload(blocks)
    return part


# RFC 6533 §3 QCHAR: printable ASCII but SP, "\\", "+" and "=". Other field text (rule 4)
# keeps every printable ASCII character and the space.
_QCHAR = frozenset(chr(c) for c in range(0x21, 0x7F)) - {"\\", "+", "="}
_TEXT_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F))


def typed_address(address: str) -> str:
    """The address-type; address of Final-Recipient (RFC 3464 §2.3.2): "rfc822; a@b" when
    ASCII, else "utf-8; " and the utf-8-addr-xtext form (RFC 6533 §3), 7-bit."""
    if address.isascii():
        return f"rfc822; {address}"
    return f"utf-8; {_xtext(address, _QCHAR)}"


def _xtext(text: str, keep: frozenset) -> str:
    """*text* with every character not in *keep* as RFC 6533's EmbeddedUnicodeChar
    "\\x{HEX}" (upper-case hex, at least two digits, as its HEXPOINT has it)."""
    if all(c in keep for c in text):
        return text
    return "".join(c if c in keep else f"\\x{{{ord(c):02X}}}" for c in text)


def _unitext(text: str, keep: frozenset) -> str:
    """*text* for message/global-delivery-status (rule 5): as _xtext, but a printable
    character outside ASCII stays as it is (RFC 6533 §3 QUCHAR)."""
    return "".join(c if c in keep or (not c.isascii() and c.isprintable())
                   else f"\\x{{{ord(c):02X}}}" for c in text)


def _unitext_address(address: str) -> str:
    """Final-Recipient in message/global-delivery-status: "utf-8; <utf-8-addr-unitext>"
    when the address has UTF-8 (RFC 6533 §3), else as typed_address."""
    if address.isascii():
        return typed_address(address)
    return f"utf-8; {_unitext(address, _QCHAR)}"


def _octets(text: str) -> str:
    """*text* as the email package holds raw 8-bit octets: its UTF-8 octets as surrogate
    escapes, which BytesGenerator writes back as they are (compat32 does not encode a
    header field that holds them)."""
    return text.encode("utf-8").decode("ascii", "surrogateescape")


def _set_8bit(part: Message, content_type: str, text: str) -> None:
    """*part* as *content_type* with *text* as its body in UTF-8 octets (_Generator)."""
    part["Content-Type"] = content_type
    part["Content-Transfer-Encoding"] = "8bit"
    part.set_payload(text)


class _Generator(BytesGenerator):
    """BytesGenerator that also writes the 8-bit body of a message/global-* part (rules 5
    and 6) as UTF-8, which RFC 6533 §6 allows in 8bit and BytesGenerator writes only for text/*
    parts. The generator finds a part's writer by its type (_handle_<maintype>_<subtype>)."""

    def _handle_message_global_headers(self, msg: Message) -> None:
        self.write(_octets(msg.get_payload()))

    _handle_message_global_delivery_status = _handle_message_global_headers


def _headers_part(original_headers: bytes) -> Message:
    """The header section of the original: text/rfc822-headers (RFC 6522 §4), or
    message/global-headers in 8bit when it holds UTF-8 (rule 6)."""
    head = original_headers[:MAX_HEADER_OCTETS]
    end = head.find(b"\r\n\r\n")
    if end == -1:
        end = head.find(b"\n\n")
    if end != -1:
        head = head[:end]
    text = head.decode("utf-8", "replace").replace("\r\n", "\n").replace("\n", "\r\n")
    text = text.rstrip("\r\n") + "\r\n"
    if text.isascii():
        return MIMEText(text, "rfc822-headers", "us-ascii", policy=_POLICY)
    part = Message(policy=_POLICY)
    _set_8bit(part, "message/global-headers", text)
    return part


def _is_ascii(reports: Sequence[RecipientReport], envelope: Envelope) -> bool:
    return envelope.queue_id.isascii() and all(
        r.address.isascii() and (r.diagnostic or "").isascii() and (r.remote_mta or "").isascii()
        and (r.reason or "").isascii() and (r.note or "").isascii() for r in reports)
