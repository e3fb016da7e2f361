"""RFC 3464 DSNs composed by bounce.py, parsed back with the email package."""

import email
import email.policy

import pytest

from core.delivery.bounce import (RecipientReport, compose_dsn, dsn_from_address,
                                  should_notify, status_of, typed_address)
from shared.spool import Envelope

HEADERS = b"From: alice@x.test\r\nSubject: quarterly report\r\n\r\nsecret body\r\n"


def envelope(sender="alice@x.test", **fields):
    return Envelope.new("Q123", sender, ["bob@y.test", "carol@y.test"], clock=lambda: 1.8e9,
                        **fields)


def parse(data):
    return email.message_from_bytes(data, policy=email.policy.default)


def compose(reports, **kw):
    return compose_dsn(envelope=envelope(), original_headers=HEADERS, reports=reports,
                       hostname="gw.test", notify_from=kw.pop("notify_from", "Mailmoat"),
                       now=1.8e9 + 60, **kw)


def test_failure_dsn_structure_and_fields():
    data = compose([RecipientReport("bob@y.test", "failed", "5.1.1", "550 5.1.1 no such user",
                                    "mx.y.test"),
                    RecipientReport("carol@y.test", "failed", "5.2.2", "552 5.2.2 full",
                                    "mx.y.test")])
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    message = parse(data)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert message["To"] == "alice@x.test"
    assert message["From"] == "Mailmoat <MAILER-DAEMON@gw.test>"
    assert message["Auto-Submitted"] == "auto-replied"
    text, status, headers = message.get_payload()
    assert text.get_content_type() == "text/plain"
    assert "550 5.1.1 no such user" in text.get_content()
    assert status.get_content_type() == "message/delivery-status"
    per_message, bob, carol = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; gw.test"
    assert bob["Final-Recipient"] == "rfc822; bob@y.test"
    assert bob["Action"] == "failed" and bob["Status"] == "5.1.1"
    assert bob["Remote-MTA"] == "dns; mx.y.test"
    assert bob["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user"
    assert carol["Status"] == "5.2.2"
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: quarterly report" in headers.get_content()
    assert "secret body" not in headers.get_content()


def test_delay_notice_says_delayed_and_until_when():
    data = compose([RecipientReport("bob@y.test", "delayed", "4.4.1", "connect failed", None,
                                    False)], retry_until=1.8e9 + 5 * 86400)
    message = parse(data)
    _, status, _ = message.get_payload()
    block = status.get_payload()[1]
    assert block["Action"] == "delayed" and block["Will-Retry-Until"]
    assert block["Diagnostic-Code"] == "x-mailmoat; connect failed"
    assert "warning" in message.get_payload()[0].get_content()


def test_mixed_or_empty_reports_are_a_bug():
    with pytest.raises(ValueError):
        compose([])
    with pytest.raises(ValueError):
        compose([RecipientReport("a@y.test", "failed", "5.0.0"),
                 RecipientReport("b@y.test", "delayed", "4.0.0")])


def test_null_sender_and_bounces_are_never_notified():
    assert should_notify(envelope())
    assert not should_notify(envelope(sender=""))
    assert not should_notify(envelope(is_bounce=True))


def test_from_address_and_status():
    assert dsn_from_address("postmaster@gw.test", "gw.test") == "postmaster@gw.test"
    assert dsn_from_address("Mailmoat", "gw.test") == "Mailmoat <MAILER-DAEMON@gw.test>"
    assert status_of(550, "5.7.1") == "5.7.1"
    assert status_of(451, None) == "4.0.0"
    assert status_of(550, "4.1.1") == "5.0.0"


def _status_part(data):
    """The raw bytes of the message/delivery-status part, as they travel."""
    start = data.index(b"Content-Type: message/delivery-status")
    return data[start:data.index(b"\r\n--", start)]


def test_utf8_recipient_is_utf8_addr_xtext_never_an_encoded_word():
    # delivery.md defect 5: Final-Recipient was "=?utf-8?b?...?=", no type, no address
    data = compose([RecipientReport("j\u00f6rg+t=x@\u00fc.test", "failed", "5.6.7",
                                    "550 5.1.1 unbekannt: j\u00f6rg", "mx.\u00fc.test"),
                    RecipientReport("bob+tag@y.test", "failed", "5.1.1",
                                    "550 5.1.1 no such user", "mx.y.test")])
    part = _status_part(data)
    assert part.isascii() and b"=?" not in part
    assert (b"Final-Recipient: utf-8; j\\x{F6}rg\\x{2B}t\\x{3D}x@\\x{FC}.test\r\n") in part
    assert b"Remote-MTA: dns; mx.\\x{FC}.test\r\n" in part
    assert b"Diagnostic-Code: smtp; 550 5.1.1 unbekannt: j\\x{F6}rg\r\n" in part
    assert b"Final-Recipient: rfc822; bob+tag@y.test\r\n" in part      # ASCII: as it is
    assert data.isascii()
    text = parse(data).get_payload()[0].get_content()
    assert "<j\u00f6rg+t=x@\u00fc.test>" in text                       # people read UTF-8


def test_typed_address_escapes_what_qchar_does_not_allow():
    assert typed_address("a@b.test") == "rfc822; a@b.test"
    assert typed_address("\u00e5 \\@\u4e2d.test") == "utf-8; \\x{E5}\\x{20}\\x{5C}@\\x{4E2D}.test"
    assert typed_address("\U0001F600@x.test") == "utf-8; \\x{1F600}@x.test"
