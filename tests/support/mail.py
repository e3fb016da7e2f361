"""Raw-message helpers shared by tests and benches that send corpus mail or read what came
out: the bytes as SMTP carries them, and a header field's value exactly as written."""

from __future__ import annotations

import re

__all__ = ["smtp_ready", "raw_field"]

SMTP_TEXT_LINE = 998        # octets before the CRLF (RFC 5321 §4.5.3.1.6; SPEC §4)


def smtp_ready(raw: bytes) -> bytes | None:
    """`raw` with CRLF line ends, or None when a line is longer than SMTP carries (the core
    refuses such a message with 554 5.6.0, SPEC §4)."""
    data = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return None if max(len(line) for line in data.split(b"\r\n")) > SMTP_TEXT_LINE else data


def raw_field(message: bytes, name: str) -> bytes | None:
    """The raw value of the first header field `name`, folding and bytes as written, ends
    stripped; None when the header block has none. The obsolete "Name :" counts too."""
    head = re.split(rb"\r?\n\r?\n", message, maxsplit=1)[0]
    match = re.search(rb"(?im)^" + re.escape(name.encode()) + rb"[ \t]*:(.*(?:\r?\n[ \t].*)*)",
                      head)
    return match.group(1).strip() if match else None
