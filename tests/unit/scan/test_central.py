"""core/scan/central.py: a central quarantine copy as written, and which received messages
are copies this installation may file (rules 2-4). Files only, no sockets."""

from __future__ import annotations

import email
import email.policy

import pytest

from core.scan import central
from shared.clock import mail_date

KEY = "shared-key-of-both-hosts"
ORIGINAL = (b"Received: from client.test by gw.test; Sun, 29 Nov 2026 08:00:00 +0000\r\n"
            b"From: sender@client.test\r\nTo: user@local.test\r\nSubject: hello\r\n\r\n"
            b"body line\r\n")
FACTS = central.CopyFacts(
    gateway="gw.test", queue_id="Q0123456789", date=mail_date(0.0),
    sender="sender@client.test", recipients=("user@local.test", "other@local.test"),
    viruses=("Mailmoat.Test.EICAR",), files=("eicar.com", "f\u00fcr.zip"),
    actions=("remove_part",))
TRACE = b"Received: from gw.test ([127.0.0.1])\r\n\tby central.test; date\r\n"


def copy_bytes(tmp_path, facts=FACTS, key=KEY, original=ORIGINAL) -> bytes:
    source, target = tmp_path / "original", tmp_path / "copy"
    source.write_bytes(original)
    with open(target, "wb") as out:
        size = central.write_copy(source, out, facts, key)
    data = target.read_bytes()
    assert size == len(data)
    return data


def received(tmp_path, data: bytes, name="received"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_copy_is_the_block_then_the_original_unchanged(tmp_path):
    data = copy_bytes(tmp_path)
    assert data.endswith(ORIGINAL)
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["X-Mailmoat-Quarantine"] == central.MARKER
    assert message.get_all("X-Mailmoat-Quarantine-Recipient") == [
        "<user@local.test>", "<other@local.test>"]
    assert message.get_all("X-Mailmoat-Quarantine-File") == ["eicar.com", "f\u00fcr.zip"]
    assert data.isascii()                               # the non-ASCII name is encoded
    assert KEY.encode() not in data                     # the key never travels
    assert message["Subject"] == "hello"


def test_a_received_copy_with_the_same_key_gives_its_facts(tmp_path):
    path = received(tmp_path, TRACE + copy_bytes(tmp_path))
    assert central.verified_copy(path, "", KEY) == FACTS


@pytest.mark.parametrize("sender, key", [("", "another-key-of-16+"), ("", None),
                                         ("sender@client.test", KEY)])
def test_another_key_no_key_or_a_sender_files_nothing(tmp_path, sender, key):
    path = received(tmp_path, TRACE + copy_bytes(tmp_path))
    assert central.verified_copy(path, sender, key) is None


def test_an_unsigned_copy_files_nothing(tmp_path):
    data = copy_bytes(tmp_path, key=None)
    assert b"Signature" not in data
    assert central.verified_copy(received(tmp_path, data), "", KEY) is None


def test_a_changed_message_files_nothing(tmp_path):
    data = copy_bytes(tmp_path).replace(b"body line", b"body lime")
    assert central.verified_copy(received(tmp_path, data), "", KEY) is None


def test_a_changed_block_files_nothing(tmp_path):
    data = copy_bytes(tmp_path).replace(b"<other@local.test>", b"<evil@local.test>")
    assert central.verified_copy(received(tmp_path, data), "", KEY) is None


def test_a_field_moved_across_the_signature_files_nothing(tmp_path):
    # the signed bytes stay the same, but the block would lose its last field
    data = copy_bytes(tmp_path)
    lines = data.split(b"\r\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(b"X-Mailmoat-Quarantine-Sig"))
    lines[at - 1], lines[at] = lines[at], lines[at - 1]
    assert central.verified_copy(received(tmp_path, b"\r\n".join(lines)), "", KEY) is None


def test_a_field_inside_the_block_files_nothing(tmp_path):
    data = copy_bytes(tmp_path).replace(b"X-Mailmoat-Quarantine-Virus",
                                        b"X-Other: 1\r\nX-Mailmoat-Quarantine-Virus")
    assert central.verified_copy(received(tmp_path, data), "", KEY) is None


def test_ordinary_mail_is_no_copy(tmp_path):
    assert central.verified_copy(received(tmp_path, ORIGINAL), "", KEY) is None


def test_a_value_cannot_add_a_field(tmp_path):
    facts = central.CopyFacts(
        gateway="gw.test", queue_id="Q1", date="d", sender="", recipients=(),
        viruses=("V",), files=("a\r\nX-Mailmoat-Quarantine-Virus: forged", "=?utf-8?q?x?="))
    data = copy_bytes(tmp_path, facts)
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message.get_all("X-Mailmoat-Quarantine-Virus") == ["V"]
    got = central.verified_copy(received(tmp_path, data), "", KEY)
    assert got.viruses == ("V",)
    assert got.files == ("a X-Mailmoat-Quarantine-Virus: forged", "=?utf-8?q?x?=")


@pytest.mark.parametrize("setting, mailbox", [
    ({"host": "127.0.0.1", "port": 25}, "quarantine@[127.0.0.1]"),
    ({"host": "::1", "port": 25}, "quarantine@[IPv6:::1]"),
    ({"host": "[::1]", "port": 25}, "quarantine@[IPv6:::1]"),
    ({"host": "CQ.Example.", "port": 25}, "quarantine@cq.example"),
    ({"host": "cq.example", "port": 25, "mailbox": "vault@example.org"}, "vault@example.org"),
])
def test_the_mailbox_copies_go_to(setting, mailbox):
    assert central.mailbox_of(setting) == mailbox
