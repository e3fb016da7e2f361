"""The central forwarder (SPEC §3 av.central_quarantine; guide §4 Central Quarantine): sends
the virus quarantine's copies marked for a central quarantine to that host, on the trio side,
as a part of the antivirus service (core/scan/service.py).

What it owns
    central_mark(...)     what a copy's envelope carries (meta "central") when
                          av.central_quarantine is set: the host, port and mailbox it goes
                          to, state "pending".
    CentralForwarder      `run()`, started in the antivirus service's nursery: at start it
                          removes signed forms an earlier run left in tmp/ and takes up the
                          pending copies of the virus quarantine, then sends each copy when
                          it is due. `copy_kept(...)`: the service's quarantine step kept a
                          marked copy; it goes at once. A copy goes with the core's
                          deliverer as core/scan/central.py writes it: with the null
                          sender, to the quarantine mailbox, under X-Mailmoat-Quarantine-*
                          fields signed with quarantine.reinsertion_key — never to the
                          original recipients (guide finding 1: an ordinary mail server
                          delivered the virus to the very recipient it had been taken
                          from). The local copy stays whatever the outcome.
    resend_command(...)   the Command.VIRUS_QUARANTINE_CENTRAL_RESEND command (Antivirus
                          Policy › Virus Quarantine, "Send to central quarantine again"):
                          copies whose sending ended are pending again (rule 4).

Rules (the antivirus service's rules 5 and 9; its rules 3 and 4 hold here too)
    1. A copy's sending ends as mail's does (SPEC §4): accepted -> state "sent" and a
       `forwarded` event; refused for good (5xx to MAIL, RCPT or DATA) -> state "failed"
       and one `delivery_failed` event, never tried again; anything else (4xx, no
       connection, a timeout, tmp/ unwritable) -> tried again, the first time
       CENTRAL_RETRY_SECONDS later, then at doubling intervals up to
       `delivery.retry_max_seconds` (core/spool `retry_delay`), each copy on its own
       schedule (`central.attempts`, `central.next_attempt_at` in its envelope, so a
       restart keeps it). A new copy goes at once, and once a host takes a copy, every
       copy waiting for that host goes in the same pass: it is back. A temporary failure
       writes a `deferred` event (rule av.central_quarantine, the next hop and the reason,
       as the queue manager's) at its first failed attempt and whenever the reason changes
       (kept as `central.last_error`), not at every retry. Neither failure event is marked
       generated, so a failed connection raises the smtp_connection_failure alert as
       mail's own does (core/notify.py); a `delivery_failed` counts in delivery_failures,
       as the summary's Message Delivery Failures counts it.
       A copy's sending ends after `delivery.retry_days` of temporary failures, as mail's
       does (the queue manager bounces then): the first attempt that fails temporarily once
       that many days have passed since the copy became pending (`central.pending_since`,
       else when it was kept) makes it "failed", its reason "expired after N days: <the
       last reply>", with the same one `delivery_failed` event and count as a refusal. The
       local copy stays. (Before, a copy waited for ever while its host was down: only the
       retention deleted it.)
    2. The signed copy as sent (core/scan/central.py) is written to the data home's tmp/
       for an attempt and removed when the attempt ends (or at the next start, after a core
       stopped in the middle of one): while the central host is down, a pending copy takes
       no room beyond its place in the virus quarantine. (Kept from one attempt to the next,
       each pending copy's signed form doubled the disk it took for hours, on the spool's
       file system, where 5 % free refuses all mail: regression hunt 13.) With rule 1's
       backoff an attempt writes it at most once per `delivery.retry_max_seconds`.
    3. The state of a copy's sending is only written here, into the copy's own envelope in
       the virus quarantine; a copy that vanishes meanwhile was deleted by the antivirus
       service on purpose (service rule 3), and its sending ends.
    4. A copy whose sending ended ("failed": refused for good or expired) is sent again
       only when an administrator asks (`resend_command`): it becomes pending for the
       central quarantine as av.central_quarantine names it now (a corrected host, port or
       mailbox counts; the failed copy's own are what failed), with no attempts and its
       retry days counted from then, and goes at once. Refused while av.central_quarantine
       is off; a copy that is pending or sent, or no central copy at all (kept while it was
       off, or received from a gateway: service rule 7), is left as it is. The copy's
       entry leaves `_due` before "failed" is written, so a resend that reads "failed"
       always finds it gone and puts it back.
    5. Every event of a copy's sending (`forwarded`, `deferred`, `delivery_failed`) carries
       the copy's queue id and the infected message's facts — sender, recipients, size,
       subject, client IP and connection id, as its own events have them — and
       `original_queue_id` in its data: the message's queue id, as its own events and the
       copy's X-Mailmoat-Quarantine-Queue-Id name it. A detail report searched by the
       subject or by that queue id finds how the copy's sending went, its success too.
       (Before, `forwarded` had neither, so such a search found a refusal and never the
       resend that then worked: guide45 finding 4.)
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import trio

from core.control import CommandRefused
from core.scan import central as wire
from core.spool import retry_delay, retry_expired
from shared.clock import mail_date
from shared.events import Action
from shared.spool import EnvelopeError, Recipient

__all__ = ["CentralForwarder", "central_mark", "quarantined_at", "VIRUS_QUEUE",
           "CENTRAL_RETRY_SECONDS"]

# The virus quarantine (core/scan/service.py owns it); named here, the module it imports.
VIRUS_QUEUE = "quarantine/virus"
CENTRAL_RETRY_SECONDS = 30.0            # the first retry of a copy; doubling from there (rule 1)
CENTRAL_TEMP_PREFIX = "central-copy-"    # a copy as sent, under the data home's tmp/ (rule 2)
# why a copy asked for again is left as it is (rule 4), by its state
_NOT_FAILED = {"pending": "still pending", "sent": "already sent"}


def central_mark(setting: Mapping) -> dict:
    """A copy's meta "central" for the av.central_quarantine value `setting`: pending."""
    from core.delivery import relay_host
    return {"host": relay_host(setting["host"]), "port": setting["port"],
            "mailbox": wire.mailbox_of(setting), "state": "pending"}


def quarantined_at(envelope) -> float:
    """When a virus quarantine copy was kept (wall clock): its Date when sent, its age for
    the retention."""
    at = envelope.meta.get("quarantined_at")
    return at if isinstance(at, (int, float)) else envelope.received_at


class CentralForwarder:
    def __init__(self, home, events, counters, settings: Callable[[], Mapping], spool, *,
                 deliverer, hostname: Callable[[], str], clock: Callable[[], float],
                 tick_seconds: float = CENTRAL_RETRY_SECONDS):
        """`deliverer` None: nothing is sent. `clock`: wall-clock unix seconds, a callable
        (copies' times and schedules); `tick_seconds`: the longest it waits (trio time)
        before it looks at that clock again, so a test that moves the clock sees the copies
        that came due."""
        self.home = home
        self.events = events
        self.counters = counters
        self.settings = settings
        self.spool = spool
        self.deliverer = deliverer
        self.hostname = hostname
        self.clock = clock
        self.tick_seconds = tick_seconds
        self._wakeup = trio.Event()
        # pending copy -> (its next attempt, wall clock; its host as "host:port"), rule 1
        self._due: dict[str, tuple[float, str]] = {}

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Ready once the signed forms of an earlier run are gone and the pending copies
        taken up; then sends copies as they come due, until cancelled."""
        await trio.to_thread.run_sync(self._remove_stale_copies)
        self._due.update(await trio.to_thread.run_sync(self._pending))
        task_status.started()
        while True:
            wait = self.tick_seconds
            if self.deliverer is not None:
                await self._pass()
                if self._due:
                    first = min(at for at, _ in self._due.values())
                    wait = min(wait, max(first - self.clock(), wait / 10))
            with trio.move_on_after(wait):
                await self._wakeup.wait()
            self._wakeup = trio.Event()

    def copy_kept(self, queue_id: str, copy) -> None:
        """The virus quarantine kept `copy` (its envelope, meta "central" from
        `central_mark`) as `queue_id`: it goes at once (rule 1)."""
        self._due[queue_id] = (copy.meta["quarantined_at"], _host_of(copy.meta["central"]))
        self._wakeup.set()

    async def resend_command(self, args: dict) -> str:
        """The Command.VIRUS_QUARANTINE_CENTRAL_RESEND command, {"ids": [...]}: these copies,
        those whose sending ended ("failed"), are pending again and go at once (rule 4).
        Says which were left as they were; CommandRefused while av.central_quarantine is off,
        or when none could be sent again."""
        setting = self.settings()["av.central_quarantine"]
        if not setting:
            raise CommandRefused("the central quarantine is off (av.central_quarantine): "
                                 "nothing sent again")
        ids = [i for i in args.get("ids") or () if isinstance(i, str)]
        mark = {**central_mark(setting), "pending_since": self.clock()}
        reset, left = await trio.to_thread.run_sync(self._reset, ids, mark)
        for queue_id in reset:
            self._due[queue_id] = (-math.inf, _host_of(mark))
        if reset:
            self._wakeup.set()
        why = "; ".join(f"{reason}: {', '.join(names)}" for reason, names in left.items())
        if not reset:
            raise CommandRefused("nothing sent again; " + why if why else
                                 "nothing sent again: no copy selected")
        return (f"{len(reset)} virus quarantine cop{'y' if len(reset) == 1 else 'ies'} sent to "
                f"the central quarantine again" + (f"; left as they were: {why}" if why else ""))

    def _reset(self, ids: list[str], mark: dict) -> tuple[list[str], dict[str, list[str]]]:
        """Rule 4 for each of `ids`: (the copies now pending, {why not: [the others]}).
        Runs in a thread."""
        reset: list[str] = []
        left: dict[str, list[str]] = {}
        for queue_id in ids:
            try:
                envelope = self.spool.read_envelope(VIRUS_QUEUE, queue_id)
            except (FileNotFoundError, NotADirectoryError, ValueError, EnvelopeError):
                left.setdefault("not in the virus quarantine", []).append(queue_id)
                continue
            central = envelope.meta.get("central")
            if not isinstance(central, dict):
                left.setdefault("no central quarantine copy", []).append(queue_id)
                continue
            if central.get("state") != "failed":
                left.setdefault(_NOT_FAILED.get(central.get("state"), "not failed"),
                                []).append(queue_id)
                continue
            envelope.meta["central"] = dict(mark)
            try:
                self.spool.write_envelope(VIRUS_QUEUE, envelope)
            except FileNotFoundError:       # deleted meanwhile (rule 3)
                left.setdefault("not in the virus quarantine", []).append(queue_id)
                continue
            reset.append(queue_id)
        return reset, left

    async def _pass(self) -> None:
        """Send every copy that is due, oldest due first, and then every copy waiting for a
        host that took one in this pass (rule 1: it is back); each once."""
        taking: set[str] = set()
        tried: set[str] = set()
        while True:
            now = self.clock()
            due = sorted((at, queue_id) for queue_id, (at, host) in self._due.items()
                         if queue_id not in tried and (at <= now or host in taking))
            if not due:
                return
            for _, queue_id in due:
                tried.add(queue_id)
                if queue_id in self._due:
                    host = self._due[queue_id][1]
                    if await self._send(queue_id):
                        taking.add(host)

    def _pending(self) -> dict[str, tuple[float, str]]:
        """The pending copies of the virus quarantine, as `_due` holds them; a copy kept by
        an earlier release (no schedule) is due now."""
        out = {}
        for queue_id in self.spool.list(VIRUS_QUEUE):
            try:
                envelope = self.spool.read_envelope(VIRUS_QUEUE, queue_id)
            except Exception:
                continue
            central = envelope.meta.get("central")
            if isinstance(central, dict) and central.get("state") == "pending":
                at = central.get("next_attempt_at")
                out[queue_id] = (at if isinstance(at, (int, float)) else -math.inf,
                                 _host_of(central))
        return out

    async def _send(self, queue_id: str) -> bool:
        """One attempt to send a copy (rule 1), as core/scan/central.py writes it: null
        sender, the quarantine mailbox, the signed block; True when the host took it. The
        host is written as routing writes a relay (`relay_host`) here, not only when the
        copy was kept: a copy kept with "[::1]" by an earlier release is sent to ::1, not
        looked up in DNS as a name. A copy kept without a mailbox (an earlier release) goes
        to the default one."""
        from core.delivery import NextHop, relay_host
        try:
            envelope = await trio.to_thread.run_sync(
                self.spool.read_envelope, VIRUS_QUEUE, queue_id)
        except (FileNotFoundError, EnvelopeError):  # deleted (rule 3), or unreadable
            self._done(queue_id)
            return False
        except OSError:                 # not readable now: its next attempt as after a try
            self._due[queue_id] = (self.clock() + CENTRAL_RETRY_SECONDS,
                                   self._due[queue_id][1])
            return False
        central = envelope.meta.get("central")
        if not isinstance(central, dict) or central.get("state") != "pending":
            self._done(queue_id)
            return False
        hop = NextHop("relay", relay_host(central["host"]), int(central["port"]),
                      rule="av.central_quarantine")
        mailbox = wire.mailbox_of(central)
        settings = self.settings()
        try:
            path, size = await trio.to_thread.run_sync(
                self._signed_form, queue_id, envelope, settings)
        except FileNotFoundError:       # deleted while it was waiting (rule 3)
            self._done(queue_id)
            return False
        except OSError as exc:          # tmp/ full or unwritable: tried again, as a refusal
            await self._not_sent(queue_id, envelope, hop, "deferred",
                                 f"copy not written in {self.home.tmp}: "
                                 f"{exc.strerror or exc}", status="4.3.0")
            return False
        outgoing = envelope.copy()
        outgoing.sender, outgoing.recipients, outgoing.size = "", [Recipient(mailbox)], size
        try:
            results = await self.deliverer.deliver(hop, outgoing, [mailbox], path, settings)
        finally:
            with trio.CancelScope(shield=True):                         # rule 2
                await trio.to_thread.run_sync(_unlink, path)
        failed = next((r for r in results if r.outcome != "delivered"), None)
        if results and failed is None:
            envelope.meta["central"] = {**central, "state": "sent", "sent_at": self.clock()}
            await self._write_copy(envelope)
            self._done(queue_id)
            self.events.record(Action.FORWARDED, rule="av.central_quarantine",
                               result="forwarded", **_message_facts(queue_id, envelope),
                               info=f"virus quarantine copy sent to {mailbox} at "
                                    f"{hop.destination}",
                               data={"forward_to": hop.destination, "mailbox": mailbox,
                                     "generated": True, **_original(envelope)})
            return True
        if failed is not None and failed.outcome == "failed":
            await self._failed(queue_id, envelope, hop, failed.text, status=failed.status,
                               remote_mta=failed.remote_mta,
                               is_remote_reply=failed.is_remote_reply)
            return False
        if failed is None:              # no answer for the mailbox at all: as a deferral
            await self._not_sent(queue_id, envelope, hop, "deferred", "no result",
                                 status="4.0.0")
        else:
            await self._not_sent(queue_id, envelope, hop, failed.outcome, failed.full_text,
                                 status=failed.status, remote_mta=failed.remote_mta,
                                 is_remote_reply=failed.is_remote_reply)
        return False

    async def _failed(self, queue_id, envelope, hop, text: str, *, status: str,
                      remote_mta: str | None = None, is_remote_reply: bool = False,
                      expired_days: int | None = None) -> None:
        """The copy's sending ends (rule 1): refused for good (`text` the host's reply), or
        expired after `expired_days` of temporary failures (`text` the last reason):
        "failed", its event, no more tries."""
        self._done(queue_id)                                            # rule 4
        central = envelope.meta["central"]
        reason = text if expired_days is None else (
            f"expired after {expired_days} day{'' if expired_days == 1 else 's'}: {text}")
        envelope.meta["central"] = {**central, "state": "failed", "last_error": reason,
                                    "attempts": int(central.get("attempts") or 0) + 1,
                                    "failed_at": self.clock()}
        envelope.meta["central"].pop("next_attempt_at", None)
        await self._write_copy(envelope)
        if self.counters is not None:
            self.counters.incr("delivery_failures")
        self.events.record(Action.DELIVERY_FAILED, rule="av.central_quarantine",
                           result="failed", **_message_facts(queue_id, envelope),
                           info=(f"virus quarantine copy refused by {hop.destination}: "
                                 if expired_days is None else
                                 f"virus quarantine copy not sent to {hop.destination} "
                                 f"within delivery.retry_days: ") +
                                f"{reason}; not sent again (the copy stays in the virus "
                                f"quarantine)",
                           data={"next_hop": hop.key, "remote_mta": remote_mta,
                                 "status": status,
                                 **({"remote_reply": True} if is_remote_reply else {}),
                                 **({"expired_after_days": expired_days}
                                    if expired_days is not None else {}),
                                 **_original(envelope)})

    async def _not_sent(self, queue_id, envelope, hop, outcome: str, text: str, *,
                        status: str, remote_mta: str | None = None,
                        is_remote_reply: bool = False) -> None:
        """A temporary failure (rule 1): the copy's next attempt, and its `deferred` event
        unless the reason is the one already written for this copy; past
        delivery.retry_days, the end of its sending instead."""
        central = envelope.meta["central"]
        settings = self.settings()
        since = central.get("pending_since")
        if not isinstance(since, (int, float)):
            since = quarantined_at(envelope)
        if retry_expired(since, settings, self.clock()):                 # rule 1
            await self._failed(queue_id, envelope, hop, text, status=status,
                               remote_mta=remote_mta, is_remote_reply=is_remote_reply,
                               expired_days=settings["delivery.retry_days"])
            return
        attempts = int(central.get("attempts") or 0) + 1
        maximum = settings["delivery.retry_max_seconds"]
        delay = retry_delay(attempts, CENTRAL_RETRY_SECONDS, maximum)
        next_at = self.clock() + delay
        is_new = text != central.get("last_error")
        envelope.meta["central"] = {**central, "last_error": text, "attempts": attempts,
                                    "next_attempt_at": next_at}
        await self._write_copy(envelope)
        if queue_id in self._due:
            self._due[queue_id] = (next_at, self._due[queue_id][1])
        if not is_new:
            return
        self.events.record(Action.DEFERRED, rule="av.central_quarantine", result=outcome,
                           **_message_facts(queue_id, envelope),
                           info=f"virus quarantine copy not sent to {hop.destination}: "
                                f"{text}; " + (f"tried again every {delay:.0f} s"
                                               if delay >= maximum else
                                               f"tried again in {delay:.0f} s, then at "
                                               f"doubling intervals up to {maximum:.0f} s"),
                           data={"next_hop": hop.key, "remote_mta": remote_mta,
                                 "status": status,
                                 **({"remote_reply": True} if is_remote_reply else {}),
                                 **_original(envelope)})

    async def _write_copy(self, envelope) -> None:
        try:
            await trio.to_thread.run_sync(self.spool.write_envelope, VIRUS_QUEUE, envelope)
        except FileNotFoundError:   # deleted while it was being sent (rule 3)
            pass

    def _done(self, queue_id: str) -> None:
        """The copy is no longer pending: no more attempts."""
        self._due.pop(queue_id, None)

    def _signed_form(self, queue_id: str, envelope, settings) -> tuple[Path, int]:
        """The copy as it is sent (rule 2), in the data home's tmp/ (the same file system
        as the spool): (its path, its size). FileNotFoundError when the copy is no longer
        in the virus quarantine. Runs in a thread."""
        meta = envelope.meta
        facts = wire.CopyFacts(
            gateway=self.hostname(), queue_id=str(meta.get("original_queue_id") or queue_id),
            date=mail_date(quarantined_at(envelope)), sender=envelope.sender,
            recipients=tuple(r.address for r in envelope.recipients),
            viruses=tuple(map(str, meta.get("virus") or ())),
            files=tuple(map(str, meta.get("files") or ())),
            actions=tuple(map(str, meta.get("actions") or ())))
        key = settings["quarantine.reinsertion_key"]
        self.home.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=CENTRAL_TEMP_PREFIX, dir=self.home.tmp)
        path = Path(name)
        try:
            with open(fd, "wb") as out:
                size = wire.write_copy(self.spool.message_path(VIRUS_QUEUE, queue_id), out,
                                       facts, key)
        except BaseException:
            _unlink(path)
            raise
        return path, size

    def _remove_stale_copies(self) -> None:
        """Copies left in tmp/ by a core stopped while it was sending them."""
        try:
            stale = list(self.home.tmp.glob(CENTRAL_TEMP_PREFIX + "*"))
        except OSError:
            return
        for path in stale:
            _unlink(path)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _message_facts(queue_id: str, envelope) -> dict:
    """What each of a copy's events says about the message (rule 5): the copy's own queue
    id, and the columns of the infected message as its own events say them, its client IP
    and connection id too (the copy's envelope keeps them)."""
    return {**envelope.event_fields(), "queue_id": queue_id}


def _original(envelope) -> dict:
    """A copy's event data names the infected message's queue id (rule 5), as its
    X-Mailmoat-Quarantine-Queue-Id does; a copy kept by an earlier release may not know it."""
    original = envelope.meta.get("original_queue_id")
    return {"original_queue_id": original} if isinstance(original, str) else {}


def _host_of(central: Mapping) -> str:
    """The host a pending copy goes to, as "host:port" (rule 1: a host that takes one
    copy takes the others)."""
    from core.delivery import relay_host
    return f"{relay_host(str(central.get('host')))}:{central.get('port')}"
