"""A DSN's `Diagnostic-Code: smtp; …` is the remote reply as the remote MTA gave it (RFC 3464
§2.3.6), nothing of ours (core/delivery/bounce.py rule 3; outbound19 finding C1).

A primary MX that greylists a recipient and a backup that refuses it leave the primary's
4xx standing, the backup's 5xx added for the admin (core/delivery/deliver.py rule 1). That
note was written into the Diagnostic-Code as well:
`smtp; 450 4.2.1 greylisted … (then mx2.dest.test answered 550 5.7.1 relay access denied)`.
It belongs in the human-readable part (and the `deferred` event), where it still is.

The first fix folded the note into the reply's text and cut it off again for the
Diagnostic-Code at the first " (then ", so a reply that says "(then …)" itself lost its
tail there (review19 r2 R4). The note is now a field of its own (RecipientResult.note,
kept in the envelope beside the last error, RecipientReport.note: review19 r2 D1).
"""

from __future__ import annotations

import email
import email.policy

import pytest

from core.delivery import RecipientReport, compose_dsn, route
from shared.events import Action
from shared.spool import DELIVERY_NOTE, Envelope
from tests.integration.test_queue import DAY, Harness, routes_to
from tests.support.next_hop import ScriptedHop, deliver, two_mx_hosts

pytestmark = pytest.mark.trio

GREYLISTED = "450 4.2.1 greylisted, try again later"
CAROL = "carol@dest.test"
BACKUP_SAID = "mx2.dest.test answered 550 5.7.1 relay access denied"


def _dsn_parts(data: bytes):
    """(the human-readable text, the per-recipient blocks) of a DSN."""
    text, status, _headers = email.message_from_bytes(
        data, policy=email.policy.default).get_payload()
    return text.get_content(), status.get_payload()[1:]


def _dsn(report: RecipientReport) -> bytes:
    return compose_dsn(envelope=Envelope.new("Q1", "alice@sender.test", [report.address]),
                       original_headers=b"Subject: answers\r\n\r\n", reports=[report],
                       hostname="gw.test", notify_from=None, now=1.8e9)


async def test_the_backups_refusal_stays_out_of_the_smtp_diagnostic(tmp_path, nursery,
                                                                     dns_server):
    primary = ScriptedHop(**{f"rcpt_{CAROL}": GREYLISTED.encode()})
    backup = ScriptedHop(**{f"rcpt_{CAROL}": b"550 5.7.1 relay access denied"})
    settings = await two_mx_hosts(nursery, dns_server, primary, backup)
    [carol], _events = await deliver(tmp_path, settings, route("dest.test", settings), [CAROL])
    assert (carol.outcome, carol.is_remote_reply) == ("deferred", True)
    assert (carol.text, carol.note) == (GREYLISTED, BACKUP_SAID)
    assert carol.full_text == f"{GREYLISTED} (then {BACKUP_SAID})"   # the event's info

    text, [block] = _dsn_parts(_dsn(RecipientReport(
        CAROL, "delayed", carol.status, carol.text, carol.remote_mta, carol.is_remote_reply,
        note=carol.note)))
    assert block["Diagnostic-Code"] == f"smtp; {GREYLISTED}"
    assert block["Remote-MTA"] == "dns; mx1.dest.test"
    assert f"<{CAROL}>: {GREYLISTED} (then {BACKUP_SAID}) (from mx1.dest.test)" in text


@pytest.mark.parametrize("reply", [
    "550 5.7.1 Message rejected (then contact postmaster)",
    "451 4.7.1 greylisted (then retry)",
])
async def test_a_reply_that_says_then_is_the_diagnostic_whole(reply):
    """review19 r2 R4: the Diagnostic-Code cut any remote reply ending in ")" at its first
    " (then ", taking it for delivery's note."""
    action = "failed" if reply.startswith("5") else "delayed"
    text, [block] = _dsn_parts(_dsn(RecipientReport(CAROL, action, reply[4:9], reply,
                                                    "mx1.dest.test")))
    assert block["Diagnostic-Code"] == f"smtp; {reply}"
    assert f"<{CAROL}>: {reply} (from mx1.dest.test)" in text


async def test_the_delay_notice_has_the_primarys_reply_whole_and_the_note_apart(
        tmp_path, nursery, dns_server, sink):
    """Through the queue manager: the note is kept in the envelope beside the last error,
    the `deferred` event shows both, and the delay notice has the primary's reply — one
    that says "(then …)" itself — as its Diagnostic-Code, the note in its text part."""
    said = "450 4.2.1 greylisted (then retry in 5 minutes)"
    primary = ScriptedHop(**{f"rcpt_{CAROL}": said.encode()})
    backup = ScriptedHop(**{f"rcpt_{CAROL}": b"550 5.7.1 relay access denied"})
    mx = await two_mx_hosts(nursery, dns_server, primary, backup)
    h = Harness(tmp_path, [*mx["routing.local"], *routes_to(("sender.test", sink))],
                **{"dns.resolvers": mx["dns.resolvers"]})
    manager = h.manager()
    await nursery.start(manager.run)
    queue_id = h.put("alice@sender.test", [CAROL])
    manager.message_accepted(queue_id)
    [notice] = await sink.await_messages(1)
    await h.until(lambda: h.ids("slow") == [queue_id])

    [deferred] = h.events.of(Action.DEFERRED)
    assert deferred["info"] == f"{said} (then {BACKUP_SAID})"
    [recipient] = h.spool.read_envelope("slow", queue_id).recipients
    assert (recipient.last_error, recipient.extra[DELIVERY_NOTE]) == (said, BACKUP_SAID)
    text, [block] = _dsn_parts(notice.data)
    assert block["Diagnostic-Code"] == f"smtp; {said}"
    assert f"<{CAROL}>: {said} (then {BACKUP_SAID}) (from mx1.dest.test)" in text


async def test_the_expiry_bounce_event_has_the_note_once(tmp_path, nursery, dns_server, sink):
    """At expiry the note joins the last error the expired recipient keeps
    (core/spool/notices.py `expire`), which the bounced event then shows: it carries the
    backup's refusal, once (review19 r5 C1 asked for with_note in the bounced event: on top
    of that last error it would say the note twice)."""
    primary = ScriptedHop(**{f"rcpt_{CAROL}": GREYLISTED.encode()})
    backup = ScriptedHop(**{f"rcpt_{CAROL}": b"550 5.7.1 relay access denied"})
    mx = await two_mx_hosts(nursery, dns_server, primary, backup)
    h = Harness(tmp_path, [*mx["routing.local"], *routes_to(("sender.test", sink))],
                **{"dns.resolvers": mx["dns.resolvers"], "delivery.retry_days": 1})
    manager = h.manager()
    await nursery.start(manager.run)
    queue_id = h.put("alice@sender.test", [CAROL])
    manager.message_accepted(queue_id)
    await h.until(lambda: h.ids("slow") == [queue_id])
    h.clock.advance(DAY + 1)
    await h.until(lambda: h.events.of(Action.BOUNCED))
    [bounced] = h.events.of(Action.BOUNCED)
    assert bounced["info"] == (f"{CAROL}: delivery time expired; last error: {GREYLISTED} "
                               f"(then {BACKUP_SAID})")
