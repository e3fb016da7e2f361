"""Raw-message helpers shared by tests and benches that send corpus mail or read what came
out: the bytes as SMTP carries them, and a header field's value exactly as written."""

from __future__ import annotations

import re
import smtplib
from email.message import EmailMessage

__all__ = ["smtp_ready", "raw_field", "nested_multipart", "deep_nest", "EICAR_ATTACHMENT",
           "send_text"]

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


# The EICAR test string as a base64 attachment part (headers and body).
EICAR_ATTACHMENT = (b"Content-Type: application/octet-stream; name=eicar.com\r\n"
                    b"Content-Transfer-Encoding: base64\r\n\r\n"
                    b"WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNU"
                    b"LUZJTEUhJEgrSCo=\r\n")


def nested_multipart(depth: int, leaf: bytes,
                     top: bytes = b"From: a@b.test\r\nTo: u@local.test\r\nSubject: x\r\n"
                     ) -> bytes:
    """A message of `depth` multipart/mixed levels, one inside the other, `leaf` (a part's
    headers and body) at the bottom."""
    body = leaf
    for level in range(depth, 0, -1):
        b = f"nest{level}".encode()
        body = (b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--' + b
                + b"\r\n" + body + b"\r\n--" + b + b"--\r\n")
    return top + b"MIME-Version: 1.0\r\n" + body


def deep_nest(levels: int, top: bytes) -> bytes:
    """The hostile-MIME finding's shape (make_deep.py), built in time linear in `levels`
    (20,000 and more): `top` header fields, then level k a multipart/mixed with boundary bk
    holding level k+1 as its only part, a text/plain "innermost" at the bottom."""
    out = [top + b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"]
    out += [b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (k - 1, k)
            for k in range(1, levels)]
    out.append(b"--b%d\r\nContent-Type: text/plain\r\n\r\ninnermost\r\n--b%d--\r\n"
               % (levels - 1, levels - 1))
    out += [b"--b%d--\r\n" % k for k in range(levels - 2, -1, -1)]
    return b"".join(out)


EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def send_text(port: int, subject: str, body: str = "Hello.\n",
              sender: str = "a@client.test", recipient: str = "user@local.test") -> None:
    """A plain text message over SMTP on loopback."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, recipient, subject
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(msg, from_addr=sender, to_addrs=[recipient])


def send_infected(port: int, subject: str = "infected") -> None:
    """A message with EICAR attached, from sender@client.test to user@local.test, over SMTP
    on loopback."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "sender@client.test", "user@local.test", subject
    msg.set_content("See the attachment.\n")
    msg.add_attachment(EICAR, maintype="application", subtype="octet-stream",
                       filename="eicar.com")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(msg, from_addr="sender@client.test", to_addrs=["user@local.test"])
