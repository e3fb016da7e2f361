"""Delivery status notifications: the bounce and the one-time delay notice (RFC 3464).

What this module owns
    `compose_dsn(...)` -> the bytes of a multipart/report (report-type=delivery-status)
    message to the original sender: a human-readable text/plain part, the
    message/delivery-status part (per-message fields, then one block per recipient with
    Final-Recipient, Action failed|delayed, Status, Remote-MTA, Diagnostic-Code), and the
    original message's headers as text/rfc822-headers (not the body: a bounce must not
    carry a virus or a large attachment back). `should_notify(envelope)` says whether a
    DSN may be sent at all.

Rules
    1. Bounces never bounce: no DSN for a message with the null sender `<>` or for a
       message that is itself a bounce/notice (RFC 5321 §4.5.5, RFC 3464 §2). The DSN is
       sent with the null sender (the caller submits it with sender "").
    2. From is `smtp.notify_from` when it is a full address, else
       "<notify_from> <MAILER-DAEMON@hostname>". Auto-Submitted: auto-replied (RFC 3834).
    3. Status comes from the remote reply's enhanced code when it has one, else from the
       reply class (5.0.0 / 4.0.0); Diagnostic-Code is "smtp; <code> <text>" for remote
       replies and "x-mailmoat; <text>" for our own (RFC 3464 §2.3.6). A report's `reason`,
       when it has one, is what the human-readable part says instead of the diagnostic.
    4. The message/delivery-status part is 7-bit and never holds an RFC 2047 encoded-word:
       an address with UTF-8 is "utf-8; <utf-8-addr-xtext>" (RFC 6533 §3: \\x{HEX} for
       each character outside QCHAR), and any other non-ASCII character in a field is
       written the same way. (message/global-delivery-status would carry raw UTF-8, but
       needs an 8-bit path back to the sender.) Original-Recipient is not written: ORCPT
       is not kept.
    5. Lines end in CRLF; the result is 7-bit (non-ASCII text and original headers go in
       base64 text parts).

Never: read files, the clock or settings itself — everything arrives as arguments.
"""

from __future__ import annotations

import datetime
import email.policy
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from shared.spool import Envelope

__all__ = ["RecipientReport", "compose_dsn", "should_notify", "dsn_from_address",
           "status_of", "typed_address", "MAX_HEADER_OCTETS"]

MAX_HEADER_OCTETS = 64 * 1024      # of the original headers quoted in a DSN
_POLICY = email.policy.compat32.clone(linesep="\r\n", max_line_length=78)


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


def should_notify(envelope: Envelope) -> bool:
    """True when a bounce or delay notice may go to this message's sender (rule 1)."""
    return bool(envelope.sender) and not envelope.is_bounce


def status_of(code: int, enhanced: str | None) -> str:
    """The RFC 3463 status for a reply: its enhanced code, else the class default."""
    if enhanced and enhanced[0] == str(code)[0]:
        return enhanced
    return f"{code // 100}.0.0" if code // 100 in (4, 5) else "5.0.0"


def dsn_from_address(notify_from: str | None, hostname: str) -> str:
    """The From header of a DSN (rule 2)."""
    if notify_from and "@" in notify_from:
        return notify_from
    return email.utils.formataddr((notify_from or "Mail Delivery System",
                                   f"MAILER-DAEMON@{hostname}"))


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
    report = MIMEMultipart("report", report_type="delivery-status", policy=_POLICY)
    report["From"] = dsn_from_address(notify_from, hostname)
    report["To"] = envelope.sender
    report["Subject"] = ("Delivery delayed: still trying" if is_delay
                         else "Undelivered mail returned to sender")
    report["Date"] = _date(now)
    report["Message-ID"] = email.utils.make_msgid("dsn", domain=hostname)
    report["Auto-Submitted"] = "auto-replied"
    report.preamble = "This is a MIME-encapsulated delivery status notification."
    report.attach(MIMEText(_human_text(envelope, reports, hostname, is_delay, retry_until),
                           "plain", "us-ascii" if _is_ascii(reports, envelope) else "utf-8",
                           policy=_POLICY))
    report.attach(_delivery_status(envelope, reports, hostname, now, retry_until))
    report.attach(_headers_part(original_headers))
    return report.as_bytes(policy=_POLICY)


def _human_text(envelope: Envelope, reports: Sequence[RecipientReport], hostname: str,
                is_delay: bool, retry_until: float | None) -> str:
    lines = [f"This is the mail system at host {hostname}.", ""]
    if is_delay:
        lines += ["Your message could not be delivered yet to the recipients below.",
                  "This is only a warning; you do not need to send the message again."]
        if retry_until is not None:
            lines.append("Delivery will be tried until "
                         f"{_date(retry_until)}.")
    else:
        lines += ["I'm sorry to have to inform you that your message could not",
                  "be delivered to one or more recipients."]
    lines += ["", f"Queue id: {envelope.queue_id}", ""]
    for r in reports:
        if r.reason:
            last = f"; last error: {r.diagnostic}" if r.diagnostic else ""
            where = f" (from {r.remote_mta})" if r.diagnostic and r.remote_mta else ""
            lines.append(f"<{r.address}>: {r.reason}{last}{where}")
            continue
        reason = r.diagnostic or "no reason given"
        where = f" (from {r.remote_mta})" if r.remote_mta else ""
        lines.append(f"<{r.address}>: {reason}{where}")
    return "\r\n".join(lines) + "\r\n"


def _delivery_status(envelope: Envelope, reports: Sequence[RecipientReport], hostname: str,
                     now: float, retry_until: float | None) -> Message:
    """message/delivery-status: the email package wants a list of header blocks."""
    per_message = Message(policy=_POLICY)
    per_message["Reporting-MTA"] = f"dns; {hostname}"
    per_message["X-Mailmoat-Queue-ID"] = envelope.queue_id
    per_message["Arrival-Date"] = _date(envelope.received_at)
    blocks = [per_message]
    for r in reports:
        block = Message(policy=_POLICY)
        block["Final-Recipient"] = typed_address(r.address)
        block["Action"] = r.action
        block["Status"] = r.status
        if r.remote_mta:
            block["Remote-MTA"] = f"dns; {_xtext(r.remote_mta, _TEXT_CHARS)}"
        if r.diagnostic:
            text = _xtext(" ".join(r.diagnostic.split()), _TEXT_CHARS)
            block["Diagnostic-Code"] = f"{'smtp' if r.is_remote_reply else 'x-mailmoat'}; {text}"
        block["Last-Attempt-Date"] = _date(now)
        if r.action == "delayed" and retry_until is not None:
            block["Will-Retry-Until"] = _date(retry_until)
        blocks.append(block)
    part = Message(policy=_POLICY)
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


def _headers_part(original_headers: bytes) -> MIMEText:
    """text/rfc822-headers (RFC 6522 §4) with the header section of the original."""
    head = original_headers[:MAX_HEADER_OCTETS]
    end = head.find(b"\r\n\r\n")
    if end == -1:
        end = head.find(b"\n\n")
    if end != -1:
        head = head[:end]
    text = head.decode("utf-8", "replace").replace("\r\n", "\n").replace("\n", "\r\n")
    text = text.rstrip("\r\n") + "\r\n"
    return MIMEText(text, "rfc822-headers", "us-ascii" if text.isascii() else "utf-8",
                    policy=_POLICY)


def _date(timestamp: float) -> str:
    """RFC 5322 date in UTC with "+0000" ("-0000" would mean "offset unknown")."""
    return email.utils.format_datetime(datetime.datetime.fromtimestamp(timestamp,
                                                                       datetime.timezone.utc))


def _is_ascii(reports: Sequence[RecipientReport], envelope: Envelope) -> bool:
    return envelope.queue_id.isascii() and all(
        r.address.isascii() and (r.diagnostic or "").isascii() and (r.remote_mta or "").isascii()
        and (r.reason or "").isascii() for r in reports)
