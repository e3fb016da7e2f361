"""Mail the core writes itself (bounces, notifications) for internationalised addresses and
headers, end to end: smtplib -> the core on loopback -> loopback sinks, one that offers
SMTPUTF8 and 8BITMIME and one that does not offer SMTPUTF8 (tests/support/sink.py).

i18n finding 7: a bounce to ñandú@sender.test had `To: =?utf-8?b?...?=` and a notification
`To: =?utf-8?q?m=C3=BCller?=@sender.test`; RFC 2047 §5 allows no encoded-word in an
address, and such mail travels with SMTPUTF8, so the field is UTF-8 (RFC 6532). The
original headers went back as base64 text/rfc822-headers; RFC 6533 §6.3 has
message/global-headers. Finding 10: smtp.notify_from refused "Security Office", the
`Name <address>` form and names that are not ASCII.
"""

from __future__ import annotations

import email
import re
import smtplib
from email import policy

import pytest
import trio

from core.app import run_core
from shared.settings import SettingError
from tests.support.core import make_home, set_settings, stored_settings

pytestmark = pytest.mark.trio

EXE = b"TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="


def _with_exe(head: str) -> bytes:
    """A message with `head` and an .exe attachment, which the file-name rules delete."""
    return (head + "Subject: Rechnung\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
            "--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAnbei.\r\n"
            "--XX\r\nContent-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename=rechnung.exe\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + EXE + b"\r\n--XX--\r\n"


def _home(tmp_path, home_sink, no_utf8, **changes):
    """sender.test and local.test go to `home_sink`, noutf.test to `no_utf8`."""
    return make_home(tmp_path, routing__local=[
        {"match": "sender.test", "relay": "127.0.0.1", "port": home_sink.port},
        {"match": "local.test", "relay": "127.0.0.1", "port": home_sink.port},
        {"match": "noutf.test", "relay": "127.0.0.1", "port": no_utf8.port}], **changes)


def _sinks(make_sink):
    home_sink, no_utf8 = make_sink(), make_sink()
    no_utf8.without_extensions = {"SMTPUTF8"}
    return home_sink, no_utf8


def _send(port: int, sender: str, recipients: list[str], data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, recipients, data, mail_options=["SMTPUTF8"])


def _to(sink, address: str):
    return next(m for m in sink.messages if m.recipients == [address])


def _field(data: bytes, name: str) -> bytes:
    """The raw value of the first header field `name`, unfolded."""
    head = data.split(b"\r\n\r\n", 1)[0]
    found = re.search(rb"(?im)^" + name.encode() + rb":[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)",
                      head)
    assert found, f"no {name} field in {head!r}"
    return re.sub(rb"\r\n[ \t]", b" ", found[1])


def _utf8_message(data: bytes):
    """An RFC 6532 message parsed as such: its header fields read as UTF-8."""
    return email.message_from_string(data.decode("utf-8"), policy=policy.default)


def _report_parts(data: bytes) -> dict[str, tuple[str, str]]:
    """content type -> (part header, part body) of the parts of a multipart/report."""
    text = data.decode("utf-8")
    boundary = _utf8_message(data).get_boundary()
    parts = {}
    for chunk in text.split(f"--{boundary}")[1:-1]:
        head, _, body = chunk.strip("\r\n").partition("\r\n\r\n")
        kind = re.search(r"(?im)^Content-Type:\s*([^;\s]+)", head)[1].lower()
        parts[kind] = (head, body)
    return parts


async def test_bounce_to_an_eai_sender_has_the_address_in_utf8_and_global_parts(
        tmp_path, make_sink, nursery):
    home_sink, no_utf8 = _sinks(make_sink)
    home = _home(tmp_path, home_sink, no_utf8)
    core = await nursery.start(run_core, home)
    original = ("From: Ñandú <ñandú@sender.test>\r\nTo: jörg@noutf.test\r\n"
                "Subject: Grüße aus Köln\r\n\r\nhallo\r\n").encode()
    # the next hop does not offer SMTPUTF8, which the message needs: 5.6.7, bounced at once
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], "ñandú@sender.test",
                                  ["jörg@noutf.test"], original)
    [bounce] = await trio.to_thread.run_sync(home_sink.wait_for, 1)
    assert bounce.sender == "" and bounce.recipients == ["ñandú@sender.test"]
    assert "SMTPUTF8" in bounce.mail_params
    assert _field(bounce.data, "To") == "ñandú@sender.test".encode()       # no =?...?=
    message = _utf8_message(bounce.data)
    assert [a.addr_spec for a in message["To"].addresses] == ["ñandú@sender.test"]
    parts = _report_parts(bounce.data)
    assert list(parts) == ["text/plain", "message/global-delivery-status",
                           "message/global-headers"]
    status_head, status = parts["message/global-delivery-status"]
    assert "Content-Transfer-Encoding: 8bit" in status_head
    assert {"Final-Recipient: utf-8; jörg@noutf.test", "Status: 5.6.7"} <= set(
        status.splitlines())
    headers_head, headers = parts["message/global-headers"]
    assert "Content-Transfer-Encoding: 8bit" in headers_head
    assert "Subject: Grüße aus Köln" in headers.splitlines() and "hallo" not in headers
    core.cancel_scope.cancel()


async def test_bounce_of_utf8_headers_to_an_ascii_sender_quotes_them_as_global_headers(
        tmp_path, make_sink, nursery):
    home_sink, no_utf8 = _sinks(make_sink)
    home = _home(tmp_path, home_sink, no_utf8)
    core = await nursery.start(run_core, home)
    original = ("From: anna@sender.test\r\nTo: user@noutf.test\r\n"
                "Subject: Prüfung – 請求書\r\n\r\nhallo\r\n").encode()
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], "anna@sender.test",
                                  ["user@noutf.test"], original)
    [bounce] = await trio.to_thread.run_sync(home_sink.wait_for, 1)
    assert bounce.recipients == ["anna@sender.test"]
    # nothing in its envelope or header needs SMTPUTF8; its 8-bit part needs 8BITMIME
    assert "SMTPUTF8" not in bounce.mail_params and "BODY=8BITMIME" in bounce.mail_params
    assert bounce.data.split(b"\r\n\r\n", 1)[0].isascii()
    parts = _report_parts(bounce.data)
    assert list(parts) == ["text/plain", "message/delivery-status", "message/global-headers"]
    assert "Final-Recipient: rfc822; user@noutf.test" in \
        parts["message/delivery-status"][1].splitlines()
    headers_head, headers = parts["message/global-headers"]
    assert "Content-Transfer-Encoding: 8bit" in headers_head
    assert "Subject: Prüfung – 請求書" in headers.splitlines()
    core.cancel_scope.cancel()


async def test_notification_to_an_eai_sender_has_the_address_in_utf8(tmp_path, make_sink,
                                                                       nursery):
    home_sink, no_utf8 = _sinks(make_sink)
    home = _home(tmp_path, home_sink, no_utf8, filename__enabled=True, notify__sender=True)
    core = await nursery.start(run_core, home)
    original = _with_exe("From: Jürgen Müller <müller@sender.test>\r\nTo: user@local.test\r\n")
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], "müller@sender.test",
                                  ["user@local.test"], original)
    await trio.to_thread.run_sync(home_sink.wait_for, 2)
    notice = _to(home_sink, "müller@sender.test")
    assert notice.sender == "" and "SMTPUTF8" in notice.mail_params
    assert _field(notice.data, "To") == "müller@sender.test".encode()
    assert b"=?" not in _field(notice.data, "To")
    assert [a.addr_spec for a in _utf8_message(notice.data)["To"].addresses] == [
        "müller@sender.test"]
    core.cancel_scope.cancel()


def _refusal(home, value) -> str:
    with pytest.raises(SettingError) as info:
        set_settings(home, smtp__notify_from=value)
    [line] = info.value.lines()
    return line


async def test_notify_from_takes_a_name_an_address_or_both_and_says_what_it_refuses(
        tmp_path):
    home = make_home(tmp_path)
    for typed, stored in [("Security Office", "Security Office"),
                          ("Sicherheitsprüfung", "Sicherheitsprüfung"),
                          ("安全 办公室", "安全 办公室"),
                          ("Security Office <sec@local.test>", "Security Office <sec@local.test>"),
                          ('"Sicherheit, IT" <it@local.test>', "Sicherheit, IT <it@local.test>"),
                          ("<alerts@local.test>", "alerts@local.test"),
                          ("alerts@local.test", "alerts@local.test"),
                          ("Mailmoat", "Mailmoat")]:
        set_settings(home, smtp__notify_from=typed)
        assert stored_settings(home)["smtp.notify_from"] == stored
    rule = ("smtp.notify_from: must be a name (Security Office), an email address "
            "(alerts@example.com) or both (Security Office <alerts@example.com>)")
    assert _refusal(home, "Office <sec@local.test") == rule
    assert _refusal(home, "Security\nOffice").startswith(rule + "; a name cannot hold")
    assert _refusal(home, "photo\u202egpj <a@local.test>").startswith(rule)
    assert _refusal(home, "ceo@bank.test <a@local.test>").startswith(rule)
    assert _refusal(home, "x" * 65).endswith("at most 64 characters")
    # From of mail sent with the null sender: nothing would ask for SMTPUTF8
    assert _refusal(home, "Prüfstelle <prüf@local.test>").startswith("smtp.notify_from: ")
    assert stored_settings(home)["smtp.notify_from"] == "Mailmoat"


@pytest.mark.parametrize("notify_from, name, notification_from, bounce_from", [
    ("Sicherheitsprüfung", "Sicherheitsprüfung", "mailmoat@mailmoat.test",
     "MAILER-DAEMON@mailmoat.test"),
    ("Prüfstelle, IT <it@local.test>", "Prüfstelle, IT", "it@local.test", "it@local.test"),
])
async def test_a_non_ascii_notify_from_name_is_encoded_in_notifications_and_bounces(
        tmp_path, make_sink, nursery, notify_from, name, notification_from, bounce_from):
    home_sink, no_utf8 = _sinks(make_sink)
    home = _home(tmp_path, home_sink, no_utf8, filename__enabled=True, notify__admin=True,
                 admin__emails=["admin@local.test"], smtp__notify_from=notify_from)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    blocked = _with_exe("From: anna@sender.test\r\nTo: user@local.test\r\n")
    await trio.to_thread.run_sync(_send, port, "anna@sender.test", ["user@local.test"], blocked)
    await trio.to_thread.run_sync(_send, port, "anna@sender.test", ["user@noutf.test"],
                                  "Subject: Grüße\r\n\r\nhallo\r\n".encode())
    await trio.to_thread.run_sync(home_sink.wait_for, 3)
    for recipient, address in (("admin@local.test", notification_from),
                               ("anna@sender.test", bounce_from)):
        data = _to(home_sink, recipient).data
        raw_from = _field(data, "From")
        assert raw_from.isascii() and b"=?utf-8?" in raw_from
        [found] = email.message_from_bytes(data, policy=policy.default)["From"].addresses
        assert (found.display_name, found.addr_spec) == (name, address)
    core.cancel_scope.cancel()
