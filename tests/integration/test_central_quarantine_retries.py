"""When a central quarantine copy is sent again, and when never (core/scan/central_forwarder.py
rules 1 and 2). The antivirus service with the real deliverer, a real spool and loopback sinks as
the central quarantine; wall time is a FakeClock the tests move, trio time is real but short
(the forwarder looks at the clock every TICK_SECONDS).

Before: a copy the central host refused for good (550 to RCPT or DATA) was sent again every
30 s for ever, and while the host was down every pending copy went every 30 s, each attempt
writing its signed copy to tmp/ anew. Now a 5xx ends the copy's sending ("failed", one
`delivery_failed` event, the local copy kept); a 4xx or no connection is retried after 30 s,
then at doubling intervals up to delivery.retry_max_seconds, its signed copy in tmp/ only
while an attempt lasts; and a host that takes a copy gets the copies waiting for it at once.

And since the sending of a copy could end, nothing made it start again: a copy whose host
stayed down waited for ever (only the retention deleted it), and a failed one could not be
sent once the host was put right. Now a copy's sending ends after delivery.retry_days of
temporary failures as mail's does ("failed", "expired after N days: <last reply>", the same
one `delivery_failed` event), and the Virus Quarantine page's "Send to central quarantine
again" (the forwarder's `resend_command`, rule 4) makes a failed copy pending again, for the
host as the setting names it now, its days counted from then.

Synchronising without sleeping: a "probe" is a copy for a second, accepting host. It is kept
now, so it is due now, and the forwarder sends due copies oldest due first: once the probe has
arrived, every copy that was due before it has had its attempt.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest
import trio

from core.control import CommandRefused
from core.delivery import Deliverer
from core.pipeline.findings import Finding
from core.pipeline.run import WorkerOutcome
from core.pipeline.verdict import decide
from core.scan.central_forwarder import CENTRAL_RETRY_SECONDS
from core.scan.service import AntivirusService
from core.status import Counters
from shared.clock import FakeClock
from shared.events import Action
from shared.spool import SUBJECT_META, Envelope, Spool, new_queue_id
from tests.support.core import make_home, stored_settings

pytestmark = pytest.mark.trio

VIRUS_QUEUE = "quarantine/virus"
TICK_SECONDS = 0.01
RETRY_MAX_SECONDS = 240
DAY_SECONDS = 86_400
KEY = "central-quarantine-shared-key-1"
MESSAGE = (b"From: sender@client.test\r\nTo: user@local.test\r\nSubject: infected\r\n"
           b"\r\nbody\r\n")


class Recorder:
    """Stands in for EventWriter: keeps events in memory."""

    def __init__(self):
        self.events = []

    def record(self, action, **fields):
        self.events.append((Action(action), fields))

    def of(self, action, rule="av.central_quarantine"):
        return [f for a, f in self.events if a == action and f.get("rule") == rule]


class Harness:
    """An antivirus service whose copies go to `central` (a Sink); `keep` puts one infected
    message through after_scan, as the pipeline does."""

    def __init__(self, tmp_path, central, **overrides):
        self.home = make_home(tmp_path)
        self.spool = Spool(self.home.spool)
        self.values = {**stored_settings(self.home), "av.quarantine": "all",
                       "quarantine.reinsertion_key": KEY,
                       "delivery.retry_max_seconds": RETRY_MAX_SECONDS,
                       "av.central_quarantine": {"host": "127.0.0.1", "port": central.port,
                                                 "mailbox": "quarantine@central.test"},
                       **overrides}
        self.events = Recorder()
        self.counters = Counters()
        self.clock = FakeClock()
        deliverer = Deliverer(settings=self.settings, events=self.events, clock=self.clock)
        self.service = AntivirusService(
            self.home, self.events, self.counters, self.settings, self.spool,
            deliverer=deliverer, hostname=lambda: "gw.test", clock=self.clock.now,
            central_tick_seconds=TICK_SECONDS)

    def settings(self):
        return MappingProxyType(dict(self.values))

    async def keep(self, files=("eicar.com",), central=None) -> str:
        """One infected message, its copy kept (for `central`, a Sink, when given); the
        copy's queue id."""
        if central is not None:
            self.values["av.central_quarantine"] = {"host": "127.0.0.1", "port": central.port}
        queue_id = new_queue_id()
        incoming = self.spool.open_incoming(queue_id)
        incoming.write(MESSAGE)
        envelope = Envelope.new(queue_id, "sender@client.test", ["user@local.test"],
                                meta={SUBJECT_META: "infected"}, clock=self.clock.now)
        self.spool.commit([incoming.prepare(envelope)], "fast")
        findings = [Finding(rule="av.on_virus", action="remove_part", event="file_deleted",
                            reason="virus found", part=index + 1,
                            data={"virus": "Mailmoat.Test.EICAR", "file": name})
                    for index, name in enumerate(files)]
        outcome = WorkerOutcome(findings=findings, verdict=decide(findings), subject="infected")
        before = set(self.spool.list(VIRUS_QUEUE))
        await self.service.after_scan(envelope, outcome, self.spool.message_path(
            "fast", queue_id), self.settings())
        [copy_id] = set(self.spool.list(VIRUS_QUEUE)) - before
        return copy_id

    def original(self, copy_id) -> str:
        """The queue id of the message `copy_id` is a copy of."""
        return self.spool.read_envelope(VIRUS_QUEUE, copy_id).meta["original_queue_id"]

    def central(self, copy_id) -> dict:
        return self.spool.read_envelope(VIRUS_QUEUE, copy_id).meta["central"]

    def signed_forms(self) -> list:
        return sorted(self.home.tmp.glob("central-copy-*"))


def tries(sink) -> int:
    """Transactions the central host saw begin (MAIL commands)."""
    return sum(c.commands.count("MAIL") for c in sink.connections)


async def until(predicate, timeout=15.0):
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


def tries_of(sink) -> int:
    """Connections the host that is down saw (it greets with 421: no MAIL)."""
    return len(sink.connections)


def refuse_rcpt(address):
    return 550, "5.7.1 relaying denied"


@pytest.mark.parametrize("refusal", ["mail", "rcpt", "data"])
async def test_a_copy_the_central_host_refuses_with_5xx_is_tried_once_then_failed(
        tmp_path, make_sink, nursery, refusal):
    central, probe_host = make_sink(), make_sink()
    if refusal == "mail":
        central.mail_reply = (550, "5.7.1 relaying denied")
    elif refusal == "rcpt":
        central.rcpt_reply = refuse_rcpt
    else:
        central.data_reply = (550, "5.7.1 relaying denied")
    h = Harness(tmp_path, central)
    await nursery.start(h.service.run)
    refused = await h.keep()
    await until(lambda: h.events.of(Action.DELIVERY_FAILED))
    [failed] = h.events.of(Action.DELIVERY_FAILED)
    assert failed["result"] == "failed" and failed["queue_id"] == refused
    assert failed["info"] == (f"virus quarantine copy refused by 127.0.0.1:{central.port}: "
                              "550 5.7.1 relaying denied; not sent again (the copy stays in "
                              "the virus quarantine)")
    assert failed["data"] == {"next_hop": f"relay:127.0.0.1:{central.port}",
                              "remote_mta": "127.0.0.1", "status": "5.7.1",
                              "remote_reply": True, "original_queue_id": h.original(refused)}
    assert h.central(refused)["state"] == "failed"
    assert h.central(refused)["last_error"] == "550 5.7.1 relaying denied"
    assert h.spool.message_path(VIRUS_QUEUE, refused).exists()      # the local copy stays
    assert h.counters.values["delivery_failures"] == 1
    assert not h.events.of(Action.DEFERRED) and not h.signed_forms()
    # Several retry periods pass (a probe after each: the forwarder looked at that time),
    # and the host takes copies again: a new copy to it goes, the refused one does not.
    central.mail_reply = central.rcpt_reply = central.data_reply = None
    for probes in range(1, 6):
        h.clock.advance(RETRY_MAX_SECONDS)
        await h.keep(central=probe_host)
        await trio.to_thread.run_sync(probe_host.wait_for, probes, 15.0)
    h.values["av.central_quarantine"] = {"host": "127.0.0.1", "port": central.port}
    new = await h.keep()
    [message] = await trio.to_thread.run_sync(central.wait_for, 1, 15.0)
    await until(lambda: len(h.events.of(Action.FORWARDED)) == 6)
    assert tries(central) == 2                                      # the refused one once
    assert message.message["X-Mailmoat-Quarantine-Queue-Id"] == (
        h.spool.read_envelope(VIRUS_QUEUE, new).meta["original_queue_id"])
    assert h.central(refused)["state"] == "failed"
    assert len(h.events.of(Action.DELIVERY_FAILED)) == 1


async def test_a_copy_for_a_host_that_is_down_backs_off_and_keeps_nothing_in_tmp(
        tmp_path, make_sink, nursery):
    central, probe_host = make_sink(), make_sink()
    central.greeting = (421, "4.3.2 down for maintenance")
    h = Harness(tmp_path, central)
    await nursery.start(h.service.run)
    waiting = await h.keep()
    await until(lambda: h.central(waiting).get("attempts") == 1)
    assert tries_of(central) == 1
    # regression hunt 13: a signed copy kept from one attempt to the next doubled the disk
    # pending copies took, for hours, on the spool's file system
    assert not h.signed_forms()
    probes = 0
    # 30 s after the first try, then doubling, capped at delivery.retry_max_seconds
    for attempt, gap in enumerate([30, 60, 120, 240, 240], start=2):
        h.clock.advance(gap - 1)                    # not yet due: a probe passes it by
        await h.keep(central=probe_host)
        probes += 1
        await trio.to_thread.run_sync(probe_host.wait_for, probes, 15.0)
        assert tries_of(central) == attempt - 1, f"tried early, before attempt {attempt}"
        h.clock.advance(1)                          # due now
        # the attempt is over once the copy's envelope has its next one (rule 1)
        await until(lambda: h.central(waiting).get("attempts") == attempt)
        assert tries_of(central) == attempt
        assert h.central(waiting)["state"] == "pending"
        assert not h.signed_forms()
    [deferred] = h.events.of(Action.DEFERRED)       # one event: the reason did not change
    assert deferred["queue_id"] == waiting
    assert deferred["info"].endswith(
        "; tried again in 30 s, then at doubling intervals up to 240 s")
    assert deferred["data"]["next_hop"] == f"relay:127.0.0.1:{central.port}"
    # The host is back: a new copy goes at once, and the waiting one with it, long before
    # its next attempt.
    central.greeting = None
    h.values["av.central_quarantine"] = {"host": "127.0.0.1", "port": central.port}
    await h.keep()
    received = await trio.to_thread.run_sync(central.wait_for, 2, 15.0)
    assert len(received) == 2
    await until(lambda: waiting in [f["queue_id"] for f in h.events.of(Action.FORWARDED)])
    assert h.central(waiting)["state"] == "sent"
    assert not h.signed_forms()                     # nothing left in tmp/


async def test_the_quarantined_event_names_the_infected_files_within_a_bound(tmp_path,
                                                                             make_sink):
    """Guide Table 7-8: the quarantined event shows the file name."""
    h = Harness(tmp_path, make_sink(), **{"av.central_quarantine": None})
    await h.keep(files=("eicar.com", "invoice.pdf.exe"))
    await h.keep(files=tuple(f"{'long-name-' * 10}{n}.exe" for n in range(60)))
    [two, many] = [f for a, f in h.events.events if a == Action.QUARANTINED]
    assert two["info"] == ("copy kept in the virus quarantine (Mailmoat.Test.EICAR; files: "
                           "eicar.com, invoice.pdf.exe)")
    assert two["data"]["central"] is False
    assert many["info"].startswith("copy kept in the virus quarantine (Mailmoat.Test.EICAR; "
                                   "files: long-name-")
    assert many["info"].endswith("… (50 files))")                   # as many as a copy lists
    assert len(many["info"]) < 400


async def test_a_copy_whose_host_stays_down_past_the_retry_days_fails_once_and_stays_local(
        tmp_path, make_sink, nursery):
    central, probe_host = make_sink(), make_sink()
    central.greeting = (421, "4.3.2 down for maintenance")
    h = Harness(tmp_path, central, **{"delivery.retry_days": 2})
    await nursery.start(h.service.run)
    waiting = await h.keep()
    await until(lambda: h.central(waiting).get("attempts") == 1)
    reason = h.central(waiting)["last_error"]
    assert "421 4.3.2 down for maintenance" in reason
    # a second short of two days: tried again, still waiting
    h.clock.advance(2 * DAY_SECONDS - 1)
    await until(lambda: h.central(waiting).get("attempts") == 2)
    assert h.central(waiting)["state"] == "pending"
    assert not h.events.of(Action.DELIVERY_FAILED)
    # its next attempt, past two days, fails as the others did and ends its sending
    h.clock.advance(RETRY_MAX_SECONDS)
    await until(lambda: h.events.of(Action.DELIVERY_FAILED))
    assert tries_of(central) == 3
    assert h.central(waiting)["state"] == "failed"
    assert h.central(waiting)["last_error"] == f"expired after 2 days: {reason}"
    [failed] = h.events.of(Action.DELIVERY_FAILED)
    assert failed["result"] == "failed" and failed["queue_id"] == waiting
    assert failed["info"] == (f"virus quarantine copy not sent to 127.0.0.1:{central.port} "
                              f"within delivery.retry_days: expired after 2 days: {reason}; "
                              "not sent again (the copy stays in the virus quarantine)")
    assert failed["data"]["next_hop"] == f"relay:127.0.0.1:{central.port}"
    assert failed["data"]["expired_after_days"] == 2
    assert h.counters.values["delivery_failures"] == 1
    assert len(h.events.of(Action.DEFERRED)) == 1           # the first failure's only
    assert h.spool.message_path(VIRUS_QUEUE, waiting).exists()      # the local copy stays
    assert not h.signed_forms()
    # never tried again: retry periods pass (a probe after each: the forwarder looked)
    for probes in range(1, 4):
        h.clock.advance(RETRY_MAX_SECONDS)
        await h.keep(central=probe_host)
        await trio.to_thread.run_sync(probe_host.wait_for, probes, 15.0)
    assert tries_of(central) == 3
    assert len(h.events.of(Action.DELIVERY_FAILED)) == 1


async def test_a_failed_copy_sent_again_goes_to_the_host_set_now_its_days_counted_afresh(
        tmp_path, make_sink, nursery):
    old_host, new_host = make_sink(), make_sink()
    old_host.rcpt_reply = refuse_rcpt
    h = Harness(tmp_path, old_host, **{"delivery.retry_days": 1})
    await nursery.start(h.service.run)
    refused = await h.keep()
    await until(lambda: h.central(refused)["state"] == "failed")
    # ten days on, the administrator points the setting at a host that is down for now,
    # and sends the copy again: it goes at once, and a temporary failure leaves it waiting
    # (its one retry day counts from now, not from when it was kept)
    h.clock.advance(10 * DAY_SECONDS)
    new_host.greeting = (421, "4.3.2 starting up")
    h.values["av.central_quarantine"] = {"host": "127.0.0.1", "port": new_host.port,
                                         "mailbox": "vault@central.test"}
    assert await h.service.central.resend_command({"ids": [refused]}) == (
        "1 virus quarantine copy sent to the central quarantine again")
    await until(lambda: h.central(refused).get("attempts") == 1)
    assert tries_of(new_host) == 1
    assert h.central(refused)["state"] == "pending"
    assert (h.central(refused)["port"], h.central(refused)["mailbox"]) == (
        new_host.port, "vault@central.test")
    # the host is up at the copy's next attempt: it takes it
    new_host.greeting = None
    h.clock.advance(CENTRAL_RETRY_SECONDS)
    [message] = await trio.to_thread.run_sync(new_host.wait_for, 1, 15.0)
    assert message.recipients == ["vault@central.test"] and message.sender == ""
    assert message.message["X-Mailmoat-Quarantine-Queue-Id"] == (
        h.spool.read_envelope(VIRUS_QUEUE, refused).meta["original_queue_id"])
    await until(lambda: h.central(refused)["state"] == "sent")
    assert tries(old_host) == 1                     # the old host never again
    assert len(h.events.of(Action.DELIVERY_FAILED)) == 1
    assert not h.signed_forms()


async def test_sending_again_is_refused_while_off_and_leaves_copies_that_did_not_fail(
        tmp_path, make_sink, nursery):
    central = make_sink()
    central.greeting = (421, "4.3.2 down for maintenance")
    h = Harness(tmp_path, central)
    await nursery.start(h.service.run)
    waiting = await h.keep()
    await until(lambda: h.central(waiting).get("attempts") == 1)
    h.values["av.central_quarantine"] = None
    unmarked = await h.keep()                       # kept while the central quarantine is off
    with pytest.raises(CommandRefused, match=r"^the central quarantine is off "
                                             r"\(av.central_quarantine\): nothing sent again$"):
        await h.service.central.resend_command({"ids": [waiting]})
    h.values["av.central_quarantine"] = {"host": "127.0.0.1", "port": central.port}
    with pytest.raises(CommandRefused) as refused:
        await h.service.central.resend_command({"ids": [waiting, unmarked, "0NOSUCHCOPY0"]})
    assert str(refused.value) == (
        f"nothing sent again; still pending: {waiting}; no central quarantine copy: "
        f"{unmarked}; not in the virus quarantine: 0NOSUCHCOPY0")
    assert h.central(waiting)["attempts"] == 1 and tries_of(central) == 1
    assert "central" not in h.spool.read_envelope(VIRUS_QUEUE, unmarked).meta


async def test_every_event_of_a_copys_sending_names_the_message_and_its_queue_id(
        tmp_path, make_sink, nursery):
    """guide45 finding 4: `forwarded` had no sender, recipients or subject, and no event of
    a copy named the message's queue id, so a detail report searched by either found the
    refusal (or nothing) and never the resend that worked. Now each carries them (rule 5)."""
    central = make_sink()
    central.greeting = (421, "4.3.2 down for maintenance")
    h = Harness(tmp_path, central)
    await nursery.start(h.service.run)
    copy = await h.keep()
    await until(lambda: h.events.of(Action.DEFERRED))
    central.greeting, central.rcpt_reply = None, refuse_rcpt
    h.clock.advance(CENTRAL_RETRY_SECONDS)
    await until(lambda: h.events.of(Action.DELIVERY_FAILED))
    central.rcpt_reply = None
    await h.service.central.resend_command({"ids": [copy]})
    await until(lambda: h.events.of(Action.FORWARDED))
    events = [h.events.of(action)
              for action in (Action.DEFERRED, Action.DELIVERY_FAILED, Action.FORWARDED)]
    assert [len(e) for e in events] == [1, 1, 1]
    size = h.spool.read_envelope(VIRUS_QUEUE, copy).size
    for [event] in events:
        assert (event["queue_id"], event["sender"], event["recipients"], event["subject"],
                event["size"]) == (copy, "sender@client.test", ["user@local.test"],
                                   "infected", size), event
        assert event["data"]["original_queue_id"] == h.original(copy) != copy
