"""Central quarantine copies on the wire (SPEC §3 av.central_quarantine; guide §4
"Forwarding infected files to the Central Quarantine"): how a copy is written for sending,
and how a Mailmoat that receives one knows it may file it instead of scanning it.

A copy is the infected message as it was received, under a block of header fields that say
what it is, written first so that they are the first thing a reader of the quarantine
mailbox sees:

    X-Mailmoat-Quarantine: copy of an infected message, not for delivery (format 1)
    X-Mailmoat-Quarantine-Gateway: the sending gateway (smtp.hostname)
    X-Mailmoat-Quarantine-Queue-Id: the infected message's queue id there
    X-Mailmoat-Quarantine-Date: when the copy was kept
    X-Mailmoat-Quarantine-Sender: <original envelope sender>
    X-Mailmoat-Quarantine-Recipient: <original envelope recipient>      (one each)
    X-Mailmoat-Quarantine-Virus: detection name                          (one each)
    X-Mailmoat-Quarantine-File: infected file                            (one each)
    X-Mailmoat-Quarantine-Action: what was done to it                    (one each)
    X-Mailmoat-Quarantine-Signature: hmac-sha256=<64 hex digits>

Rules
    1. The copy goes with the null sender to the quarantine mailbox (`mailbox_of`), never
       to the original recipients: an ordinary mail server delivers it to that mailbox, and
       nothing bounces to a sender the virus forged (core/scan/service.py sends it).
    2. The signature is an HMAC-SHA256, keyed with `quarantine.reinsertion_key`, over the
       block above it (its length first, so no field can be moved across the boundary) and
       every byte of the message after it. The key itself never travels: the holder of the
       quarantine mailbox learns nothing that lets it make a copy. Without a key the copy
       goes unsigned.
    3. A received message is a copy to file (`verified_copy`) only when it came with the
       null sender, its block is whole and contiguous, and the signature verifies with this
       installation's key, the message after the block arriving byte for byte as sent
       (trace fields above the block do not count). Anything else is ordinary mail, scanned
       as any other: a forged or damaged block files nothing.
    4. Every value is one line of printable ASCII; anything else (a file name in another
       script, a control character, text that looks like an encoded word) is written as
       RFC 2047 encoded words and decoded again when read, so no value can add a field.

Never: trust a value of an unsigned or badly signed block, or deliver a copy.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from email.header import Header, decode_header, make_header
from pathlib import Path
from typing import BinaryIO

__all__ = ["CopyFacts", "FIELD", "FILES_MAX", "VALUE_MAX_CHARS", "mailbox_of", "write_copy",
           "verified_copy"]

FIELD = "X-Mailmoat-Quarantine"
MARKER = "copy of an infected message, not for delivery (format 1)"
DEFAULT_MAILBOX_LOCAL = "quarantine"
_SIGNATURE = f"{FIELD}-Signature"
_SCHEME = b"hmac-sha256="
_CONTEXT = b"mailmoat central quarantine copy 1\0"    # the HMAC's domain, and its format
FILES_MAX = 50                  # a copy names at most this many infected files
VALUE_MAX_CHARS = 300           # and each value in at most this many characters
_PROBE_OCTETS = 64 * 1024       # where the block must start: after a few trace fields
_HEADER_MAX_OCTETS = 1 << 20    # 1000 recipients' fields are ~50 KB
_CHUNK_OCTETS = 1 << 20


@dataclass(frozen=True)
class CopyFacts:
    """What a copy's block says."""
    gateway: str
    queue_id: str
    date: str
    sender: str                     # "" for the null sender
    recipients: tuple[str, ...]
    viruses: tuple[str, ...]
    files: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()


def mailbox_of(central: Mapping) -> str:
    """The address copies go to: the setting's `mailbox`, else quarantine@<host> (an
    address literal for an IP address, RFC 5321 §4.1.3)."""
    if central.get("mailbox"):
        return central["mailbox"]
    host = str(central["host"]).strip().removeprefix("[").removesuffix("]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"{DEFAULT_MAILBOX_LOCAL}@{host.lower().rstrip('.')}"
    literal = f"IPv6:{address.compressed}" if address.version == 6 else str(address)
    return f"{DEFAULT_MAILBOX_LOCAL}@[{literal}]"


# --- sending ----------------------------------------------------------------------------

def write_copy(source: Path, out: BinaryIO, facts: CopyFacts, key: str | None) -> int:
    """Write the copy of the message at `source` to `out` (a new file, opened for binary
    writing at its start); the copy's size in octets. The HMAC is computed while the
    message is copied and written into the signature field's place afterwards (it has a
    fixed length)."""
    block = _block(facts)
    mac = _mac(key, block) if key else None
    placeholder = (_SIGNATURE + ": ").encode() + _SCHEME + b"0" * 64 + b"\r\n"
    with open(source, "rb") as message:
        out.write(block)
        signature_at = out.tell()
        if mac is not None:
            out.write(placeholder)
        while chunk := message.read(_CHUNK_OCTETS):
            out.write(chunk)
            if mac is not None:
                mac.update(chunk)
        size = out.tell()
    if mac is not None:
        out.seek(signature_at)
        out.write(placeholder.replace(b"0" * 64, mac.hexdigest().encode()))
    return size


def _block(facts: CopyFacts) -> bytes:
    fields = [(FIELD, MARKER), ("Gateway", facts.gateway), ("Queue-Id", facts.queue_id),
              ("Date", facts.date), ("Sender", f"<{facts.sender}>"),
              *(("Recipient", f"<{r}>") for r in facts.recipients),
              *(("Virus", v) for v in facts.viruses),
              *(("File", f) for f in facts.files[:FILES_MAX]),
              *(("Action", a) for a in facts.actions)]
    return b"".join(_field(name if name == FIELD else f"{FIELD}-{name}", value)
                    for name, value in fields)


def _field(name: str, value: str) -> bytes:
    """One header field, CRLF-terminated (rule 4)."""
    value = str(value)[:VALUE_MAX_CHARS]
    if value.isascii() and value.isprintable() and "=?" not in value:
        return f"{name}: {value}\r\n".encode("ascii")
    encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode("ascii")


def _mac(key: str, block: bytes):
    mac = hmac.new(key.encode("utf-8"), _CONTEXT, hashlib.sha256)
    mac.update(len(block).to_bytes(8, "big"))
    mac.update(block)
    return mac


# --- receiving --------------------------------------------------------------------------

def verified_copy(path: Path, sender: str, key: str | None) -> CopyFacts | None:
    """The facts of the copy at `path` when it is one this installation may file (rule 3),
    else None. Reads the message (in a thread: it blocks)."""
    if sender or not key:
        return None
    with open(path, "rb") as message:
        head = message.read(_PROBE_OCTETS)
        if FIELD.lower().encode() not in head.lower():
            return None
        header = _header_section(head, message)
        found = _find_block(header)
        if found is None:
            return None
        block, signature, body_at = found
        mac = _mac(key, block)
        message.seek(body_at)
        while chunk := message.read(_CHUNK_OCTETS):
            mac.update(chunk)
    if not hmac.compare_digest(mac.hexdigest().encode(), signature):
        return None
    return _facts(block)


def _header_section(head: bytes, message) -> bytes:
    """The message's header section (to the empty line), at most _HEADER_MAX_OCTETS."""
    data = head
    while b"\r\n\r\n" not in data and b"\n\n" not in data and len(data) < _HEADER_MAX_OCTETS:
        more = message.read(_PROBE_OCTETS)
        if not more:
            break
        data += more
    return data[:_HEADER_MAX_OCTETS]


def _fields(header: bytes) -> list[tuple[str, int, int]]:
    """(lower-case name, start, end) of each field of the header section, in order,
    continuation lines included; stops at the empty line."""
    out: list[tuple[str, int, int]] = []
    at = 0
    while at < len(header):
        end = header.find(b"\n", at)
        end = len(header) if end < 0 else end + 1
        line = header[at:end]
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and out:
            name, start, _ = out[-1]
            out[-1] = (name, start, end)
        else:
            name = line.split(b":", 1)[0].strip().lower().decode("latin-1")
            out.append((name, at, end))
        at = end
    return out


def _find_block(header: bytes) -> tuple[bytes, bytes, int] | None:
    """(the block's bytes, the signature's hex digits, where the message after the
    signature field starts) when the header holds a whole block, else None."""
    fields = _fields(header)
    marker, prefix = FIELD.lower(), FIELD.lower() + "-"
    first = next((i for i, (name, _, _) in enumerate(fields) if name == marker), None)
    if first is None:
        return None
    for name, start, end in fields[first + 1:]:
        if name == _SIGNATURE.lower():
            value = header[start:end].split(b":", 1)[1].strip()
            if not value.startswith(_SCHEME):
                return None
            return header[fields[first][1]:start], value[len(_SCHEME):], end
        if not name.startswith(prefix):
            return None         # the block ends without a signature: not signed
    return None


def _facts(block: bytes) -> CopyFacts:
    values: dict[str, list[str]] = {}
    for name, start, end in _fields(block):
        raw = block[start:end].split(b":", 1)[1].decode("ascii", "replace")
        text = " ".join(raw.split())            # unfolded
        try:
            text = str(make_header(decode_header(text)))
        except (ValueError, LookupError):
            pass
        values.setdefault(name.removeprefix(FIELD.lower() + "-"), []).append(text)

    def one(name: str) -> str:
        return (values.get(name) or [""])[0]

    def address(text: str) -> str:
        return text.strip().removeprefix("<").removesuffix(">")

    return CopyFacts(gateway=one("gateway"), queue_id=one("queue-id"), date=one("date"),
                     sender=address(one("sender")),
                     recipients=tuple(address(r) for r in values.get("recipient", ())),
                     viruses=tuple(values.get("virus", ())),
                     files=tuple(values.get("file", ())),
                     actions=tuple(values.get("action", ())))
