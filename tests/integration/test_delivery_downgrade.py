"""8-bit content to a next hop without 8BITMIME goes as 7-bit (RFC 6152 §3), over loopback.

The sink (tests/support/sink.py, no code shared with ours) stands for the next hop: with
`without_extensions = {"8BITMIME"}` it does not announce 8BITMIME and refuses BODY=8BITMIME.
What it receives is decoded by Python's email parser and compared with the original.
"""

from __future__ import annotations

import email
from pathlib import Path
from types import MappingProxyType

import pytest

from core.delivery import Deliverer, NextHop
from core.delivery.downgrade import downgrade
from core.delivery.session import MESSAGE_CHUNK_OCTETS
from shared.settings import defaults
from shared.spool import Envelope
from tests.support.scripted_server import size_limited_server

MESSAGE = (b"From: Anna <anna@a.test>\r\n"
           b"To: bob@b.test\r\n"
           b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: multipart/alternative; boundary=b1\r\n\r\n"
           b"--b1\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln.\r\n"
           b".a line with a leading dot\r\n"
           b"--b1\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n"
           b"PHA+R3LDvMOfZSBhdXMgS8O2bG4uPC9wPg==\r\n"
           b"--b1--\r\n")


class Recorder:
    def record(self, action, **fields):
        pass


def snapshot():
    values = dict(defaults())
    values.update({"smtp.hostname": "gw.test", "dns.timeout_seconds": 1,
                   "dns.resolvers": ["127.0.0.1:9"]})
    return MappingProxyType(values)


def spooled(tmp_path: Path, data: bytes, body: str = "8BITMIME") -> tuple[Envelope, Path]:
    directory = tmp_path / "Q1"
    directory.mkdir()
    path = directory / "message"
    path.write_bytes(data)
    envelope = Envelope.new("Q1", "anna@a.test", ["bob@b.test"], body=body)
    envelope.size = len(data)
    return envelope, path


async def deliver(port: int, envelope: Envelope, path: Path):
    deliverer = Deliverer(settings=snapshot, events=Recorder())
    try:
        return await deliverer.deliver(NextHop("relay", "127.0.0.1", port), envelope,
                                       ["bob@b.test"], path)
    finally:
        await deliverer.aclose()


def leaves(raw: bytes) -> list[tuple[str, bytes]]:
    """(content type, decoded body) of every leaf, line breaks as CRLF."""
    found = []
    for part in email.message_from_bytes(raw).walk():
        if not part.is_multipart():
            body = part.get_payload(decode=True) or b""
            body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            found.append((part.get_content_type(), body))
    return found


def size_param(params: list[str]) -> int:
    return int(next(p for p in params if p.upper().startswith("SIZE="))[5:])


@pytest.mark.parametrize("body", ["8BITMIME", "7BIT"])      # 7BIT: a client that lied
async def test_a_host_without_8bitmime_receives_7bit_that_decodes_the_same(make_sink, tmp_path,
                                                                          body):
    sink = make_sink()
    sink.without_extensions = {"8BITMIME"}
    envelope, path = spooled(tmp_path, MESSAGE, body)
    [result] = await deliver(sink.port, envelope, path)
    assert (result.outcome, result.status) == ("delivered", "2.0.0"), result.text
    [received] = sink.messages
    assert received.data.isascii()
    assert leaves(received.data) == leaves(MESSAGE)
    assert received.data.split(b"\r\n\r\n", 1)[0] == MESSAGE.split(b"\r\n\r\n", 1)[0]
    assert not any(p.upper().startswith("BODY=") for p in received.mail_params)
    assert size_param(received.mail_params) == len(received.data)   # the copy's size
    assert sorted(p.name for p in path.parent.iterdir()) == ["message"]
    assert path.read_bytes() == MESSAGE                                # the spool untouched


async def test_a_host_with_8bitmime_receives_the_original_bytes(sink, tmp_path):
    envelope, path = spooled(tmp_path, MESSAGE)
    [result] = await deliver(sink.port, envelope, path)
    assert result.outcome == "delivered"
    [received] = sink.messages
    assert received.data == MESSAGE and "BODY=8BITMIME" in received.mail_params


async def test_an_all_ascii_message_goes_untouched_whatever_its_client_said(make_sink, tmp_path):
    sink = make_sink()
    sink.without_extensions = {"8BITMIME"}
    data = b"Subject: plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\nplain text\r\n"
    envelope, path = spooled(tmp_path, data, "8BITMIME")
    [result] = await deliver(sink.port, envelope, path)
    assert result.outcome == "delivered"
    assert sink.messages[0].data == data


async def test_a_large_message_is_converted_through_a_file_removed_afterwards(make_sink,
                                                                           tmp_path):
    line = "Übergröße, naïve café — ".encode() * 3 + b"\r\n"
    data = (b"Subject: big\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n"
            + line * (MESSAGE_CHUNK_OCTETS // len(line) + 10))
    sink = make_sink()
    sink.without_extensions = {"8BITMIME"}
    envelope, path = spooled(tmp_path, data)
    during: list[list[str]] = []

    def look(_message):         # while the copy is being sent
        during.append(sorted(p.name for p in path.parent.iterdir()))

    sink.data_reply = look
    [result] = await deliver(sink.port, envelope, path)
    assert result.outcome == "delivered", result.text
    [received] = sink.messages
    assert received.data.isascii() and leaves(received.data) == leaves(data)
    [names] = during
    assert len(names) == 2 and names[0] == "message" and names[1].startswith("message.7bit-")
    assert sorted(p.name for p in path.parent.iterdir()) == ["message"]


async def test_what_cannot_be_converted_is_sent_as_received_not_bounced(make_sink, tmp_path):
    sink = make_sink()
    sink.without_extensions = {"8BITMIME", "SMTPUTF8"}
    data = (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"Pr\xe9ambule\r\n--b\r\n\r\nGr\xfc\xdfe\r\n--b--\r\n")    # 8-bit preamble
    envelope, path = spooled(tmp_path, data)
    [result] = await deliver(sink.port, envelope, path)
    assert result.outcome == "delivered"
    assert sink.messages[0].data == data
    assert sorted(p.name for p in path.parent.iterdir()) == ["message"]


async def test_size_is_checked_against_the_7bit_copy(nursery, tmp_path):
    # the original fits the limit; its quoted-printable copy (=C3=BC for each ü) does not
    data = b"Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" \
        + "ü".encode() * 200 + b"\r\n"
    connections: list[list[str]] = []
    port = await nursery.start(size_limited_server, len(data) + 10, connections)
    envelope, path = spooled(tmp_path, data)
    [result] = await deliver(port, envelope, path)
    assert (result.outcome, result.status) == ("failed", "5.3.4")
    assert result.text.startswith(f"message of {len(downgrade(data))} octets is over the "
                                  f"SIZE limit {len(data) + 10}")
    assert "MAIL" not in [verb for commands in connections for verb in commands]
