"""Bounces, delay notices and expiry: the DSNs the queue manager sends (SPEC §4, RFC 3464).

Rules
    1. A DSN goes only where `bounce.should_notify` allows (never for a null sender or a
       bounce), with the null sender, through `QueueManager.submit_generated`.
    2. One bounce per attempt for all recipients that failed in it (Action: failed); one
       delay notice per message, at its first deferral (Action: delayed); at expiry the
       recipients still waiting fail with 4.4.7 and are bounced. The expiry bounce says
       "delivery time expired" in its human-readable part; its Diagnostic-Code is the last
       remote reply ("smtp; 451 ..."), or our own last error as "x-mailmoat; ..." when no
       remote host answered (RFC 3464 §2.3.6: an smtp diagnostic is an SMTP reply).
    3. Counters: `bounced` once per bounce sent; expired recipients count as
       `delivery_failures` and get a DELIVERY_FAILED event each.
    4. A bounce or delay notice that rule 1 keeps from going is a DELIVERY_SUPPRESSED event
       (guide Table 7-8 "Delivery suppressed": when a message was not delivered, From/To,
       the SMTP ID) on the original message's row: its sender (empty for `<>`), the
       recipients the notice was about, which notice and why. Nothing else says that the
       sender was not told.
"""

from __future__ import annotations

from collections.abc import Mapping

import trio

from core.delivery.bounce import (MAX_HEADER_OCTETS, RecipientReport, compose_dsn,
                                  should_notify, with_note)
from core.spool import files
from core.spool.dispositions import origin_data
from core.spool.schedule import retry_until
from shared.events import Action
from shared.spool import DELIVERY_NOTE, ENHANCED_STATUS, Envelope

__all__ = ["NoticeWriter", "EXPIRED_STATUS"]

EXPIRED_STATUS = "4.4.7"   # RFC 3463: delivery time expired
EXPIRED_REASON = "delivery time expired"


def _report(recipient, action: str, **overrides) -> RecipientReport:
    status = (recipient.extra.get(ENHANCED_STATUS)     # older envelopes have none
              or ("5.0.0" if action == "failed" else "4.0.0"))
    return RecipientReport(**{
        "address": recipient.address, "action": action, "status": status,
        "diagnostic": recipient.last_error, "remote_mta": recipient.extra.get("remote_mta"),
        "is_remote_reply": bool(recipient.extra.get("is_remote_reply")),
        "note": recipient.extra.get(DELIVERY_NOTE), **overrides})


class NoticeWriter:
    def __init__(self, manager) -> None:
        self.manager = manager

    async def _hostname(self, settings: Mapping) -> str:
        from shared.home import gateway_name
        # in a thread: the machine's name is looked up once, and that may ask DNS
        return await trio.to_thread.run_sync(gateway_name, settings)

    async def _send(self, queue: str, envelope: Envelope, reports: list[RecipientReport],
                    settings: Mapping, kind: str, retry_until: float | None = None) -> str:
        m = self.manager
        headers = await trio.to_thread.run_sync(files.read_headers, m.spool, queue,
                                                envelope.queue_id, MAX_HEADER_OCTETS)
        dsn = compose_dsn(envelope=envelope, original_headers=headers, reports=reports,
                          hostname=await self._hostname(settings),
                          notify_from=settings.get("smtp.notify_from"), now=m.clock.now(),
                          retry_until=retry_until)
        return await m.submit_generated("", [envelope.sender], dsn, is_bounce=True, kind=kind)

    async def bounce(self, queue: str, envelope: Envelope, failed,
                     reports: list[RecipientReport] | None = None) -> None:
        """Bounce *failed*; *reports* (one per recipient) when the caller made them."""
        if not failed:
            return
        if not should_notify(envelope):
            self._suppressed(envelope, failed, "bounce")
            return
        m = self.manager
        settings = m.settings()
        if reports is None:
            reports = [_report(r, "failed") for r in failed]
        dsn_id = await self._send(queue, envelope, reports, settings, "bounce")
        m.counters.incr("bounced")
        m.events.record(Action.BOUNCED, queue_id=envelope.queue_id, sender=envelope.sender,
                        recipients=[r.address for r in failed], size=envelope.size,
                        subject=envelope.subject(),
                        info="; ".join(f"{r.address}: {r.last_error}" for r in failed)[:1000],
                        data={"dsn_queue_id": dsn_id})

    async def delay(self, queue: str, envelope: Envelope, deferred, settings: Mapping) -> None:
        if not should_notify(envelope):
            self._suppressed(envelope, deferred, "delay notice")
            return
        await self._send(queue, envelope, [_report(r, "delayed") for r in deferred], settings,
                         "delay_notice", retry_until=retry_until(envelope.received_at,
                                                                  settings))

    def _suppressed(self, envelope: Envelope, recipients, notice: str) -> None:
        """Rule 4."""
        why = ("it is itself a bounce or notice" if envelope.is_bounce
               else "its sender is the null sender <>")
        self.manager.events.record(
            Action.DELIVERY_SUPPRESSED, queue_id=envelope.queue_id, sender=envelope.sender,
            recipients=[r.address for r in recipients], size=envelope.size,
            subject=envelope.subject(), rule="bounce.never_bounces",
            info=f"{notice} not sent: {why} (RFC 5321 §4.5.5)",
            data={"notice": notice.replace(" ", "_"), **origin_data(envelope)})

    async def expire(self, queue: str, envelope: Envelope, deferred, failed=()) -> None:
        """Fail what is still waiting after delivery.retry_days, bounce it with `failed`
        (those refused for good in the same attempt: one bounce, rule 2), then end the
        message as every other end does (`QueueManager.complete`: deleted, COMPLETED)."""
        m = self.manager
        # The message's columns, its client IP and inbound connection id too, as on the
        # 5xx path (docs/reporting.md; reports18 A1: they were left out here)
        fields = envelope.event_fields()
        reports = [_report(r, "failed") for r in failed]
        for recipient in deferred:
            # rule 2: the last error stays the diagnostic, with its own type
            reports.append(_report(recipient, "failed", status=EXPIRED_STATUS,
                                   reason=EXPIRED_REASON))
            recipient.status = "failed"
            last = with_note(recipient.last_error or "none", recipient.extra.get(DELIVERY_NOTE))
            recipient.last_error = f"{EXPIRED_REASON}; last error: {last}"
            m.counters.incr("delivery_failures")
            m.events.record(Action.DELIVERY_FAILED,
                            **{**fields, "recipients": [recipient.address]},
                            rule="delivery.retry_days",
                            result="failed", info=recipient.last_error,
                            data=origin_data(envelope))
        await self.bounce(queue, envelope, [*failed, *deferred], reports)
        # reports18 A1: a bare delete left an expired message without its COMPLETED
        await m.complete(queue, envelope)
