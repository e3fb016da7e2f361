"""A DSN's `Diagnostic-Code: smtp; …` is the remote reply as the remote MTA gave it (RFC 3464
§2.3.6), nothing of ours (core/delivery/bounce.py rule 3; outbound19 finding C1).

A primary MX that greylists a recipient and a backup that refuses it leave the primary's
4xx standing, the backup's 5xx added for the admin (core/delivery/deliver.py rule 1). That
note was written into the Diagnostic-Code as well:
`smtp; 450 4.2.1 greylisted … (then mx2.dest.test answered 550 5.7.1 relay access denied)`.
It belongs in the human-readable part (and the `deferred` event), where it still is.
"""

from __future__ import annotations

import email
import email.policy

import pytest

from core.delivery import RecipientReport, compose_dsn, route
from shared.spool import Envelope
from tests.support.next_hop import ScriptedHop, deliver, two_mx_hosts

pytestmark = pytest.mark.trio

GREYLISTED = "450 4.2.1 greylisted, try again later"
CAROL = "carol@dest.test"


async def test_the_backups_refusal_stays_out_of_the_smtp_diagnostic(tmp_path, nursery,
                                                                     dns_server):
    primary = ScriptedHop(**{f"rcpt_{CAROL}": GREYLISTED.encode()})
    backup = ScriptedHop(**{f"rcpt_{CAROL}": b"550 5.7.1 relay access denied"})
    settings = await two_mx_hosts(nursery, dns_server, primary, backup)
    [carol], _events = await deliver(tmp_path, settings, route("dest.test", settings), [CAROL])
    note = "(then mx2.dest.test answered 550 5.7.1 relay access denied)"
    assert (carol.outcome, carol.is_remote_reply) == ("deferred", True)
    assert carol.text == f"{GREYLISTED} {note}"     # the event's info keeps the note

    data = compose_dsn(
        envelope=Envelope.new("Q1", "alice@sender.test", [CAROL]),
        original_headers=b"Subject: answers\r\n\r\n",
        reports=[RecipientReport(CAROL, "delayed", carol.status, carol.text, carol.remote_mta,
                                 carol.is_remote_reply)],
        hostname="gw.test", notify_from=None, now=1.8e9)
    text, status, _headers = email.message_from_bytes(
        data, policy=email.policy.default).get_payload()
    [block] = status.get_payload()[1:]
    assert block["Diagnostic-Code"] == f"smtp; {GREYLISTED}"
    assert block["Remote-MTA"] == "dns; mx1.dest.test"
    assert f"<{CAROL}>: {GREYLISTED} {note} (from mx1.dest.test)" in text.get_content()
