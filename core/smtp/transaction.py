"""One mail transaction of an inbound SMTP session (RFC 5321 §3.3): its MAIL FROM and RCPT TO
answered by the SMTP-time policy, and the events of what it refused.

What this module owns
    `InboundTransaction`: the sender, its MAIL parameters, the recipients and the RBL
    listing of one transaction, from MAIL FROM until its DATA is answered or it ends (RSET,
    a new hello, the end of the session). The session (core/smtp/session.py) starts a new
    one at each of those; the policy checks themselves are core/smtp/policy.py's and
    core/smtp/rbl.py's. core/smtp/client.py's `Transaction` is the outbound counterpart.

Rules:
- `RCPT TO:<Postmaster>` without a domain (RFC 5321 §4.5.1: always accepted),
  postmaster@ the gateway's own host name, and postmaster@[the address the client connected
  to] (RFC 5321 §4.1.3: an address literal names a host as its domain does, smtp18 C2), is
  mail for this gateway's postmaster: accepted
  from any client (no relay check) as the addresses of `admin.emails`, which the envelope
  and the accepted event then name. An administrator should set `admin.emails`; while it is
  empty such mail goes to postmaster@ the gateway's host name (smtp.hostname, else the
  machine's), which reaches someone only if routing.local or DNS leads that name to a mail
  server with a postmaster. Before, it went out as <Postmaster> to whatever next hop
  routing.default named, someone else's postmaster (smtp-security finding 5). Each of
  those addresses counts toward the 1000 recipients of a message (SPEC §4): a RCPT that
  would take the message past them gets 452 4.5.3, as the protocol answers the 1001st
  RCPT (smtp18 C1: <Postmaster> and 1000 others made 1002).
- Each MAIL FROM and RCPT TO is answered by the settings in force then (core/smtp/session.py
  rules: relay.*, address_chars.*, routing.local, admin.emails, delivery.reject_incoming),
  not by the session's snapshot.
- Past the session's error limit (core/smtp/protocol.py Rule 2a) a refusal is answered
  421 4.7.0 instead, and written as that protocol violation, not as a rejection.
- A refused recipient's `rejected` event is written when its transaction reaches DATA or
  ends (`settle_refusals`): only then is it known whether a message was rejected, and the
  reports and the Rejected counter count messages (guide Tables 7-1, 7-2). It is stamped
  with the time of the refusal (guide Table 7-6: "the date and time of the rejection"), not
  of the RSET or QUIT minutes later, so the reports, which sort by time, show it before
  what followed it.
- A SIZE= over the limit advertised in EHLO is refused at MAIL FROM (552 5.3.4, RFC 1870
  §6) as the rule `size.max_mb`, the same refusal as the limit hit after DATA.
- Each MAIL FROM reads the RBL settings in force then, not the session's snapshot
  (`_rbl_listing_now`).
- A message is rejected once (one `rejected` event with the reply code, one count): a
  recipient refusal still pending when delivery.reject_incoming refuses the transaction
  with 421 is written as a refused recipient (`settle_refusals(rejected=True)`), the 421
  being the message's rejection.
"""

from __future__ import annotations

from typing import Mapping

from core.smtp import replies as R
from core.smtp.events import MailFrom, RcptTo
from core.smtp.policy import (Refusal, check_declared_size, check_recipient, check_spool_space,
                              listed_relay_client)
from core.smtp.rbl import RblListing, check_rbl_sender
from shared.events import RECIPIENT_REFUSED, Action
from shared.idn import address_literal, domain_form

__all__ = ["InboundTransaction"]


class InboundTransaction:
    """One transaction of `session` (a core/smtp/session.py Session, whose connection facts,
    events, log and replies it uses)."""

    def __init__(self, session) -> None:
        self.session = session
        self.sender: str | None = None
        self.mail_params: dict = {}
        self.recipients: list[str] = []
        self.rbl_listing: RblListing | None = None   # the client's, at this MAIL FROM
        # (address, Refusal, when) of the first recipient this transaction refused: its
        # event waits for the end (`settle_refusals`), which decides whether it rejected a
        # message. The later ones cannot, and are written at once: a client naming refused
        # recipients for an hour must not grow a list.
        self.first_refused: tuple[str, Refusal, float] | None = None

    async def mail_from(self, event: MailFrom) -> None:
        """Answer MAIL FROM: 250, or a refusal for the declared size, the spool's free space
        or an RBL."""
        session, server = self.session, self.session.server
        if await session.refuses_new_mail(event.address):
            return
        self.rbl_listing, rbl_settings = await self._rbl_listing_now()
        declared = event.params.get("SIZE") or 0
        refusal = check_declared_size(declared, session.conn.max_message_octets) \
            or check_spool_space(server.disk_space().free_fraction(declared), at="MAIL",
                                declared=declared) \
            or check_rbl_sender(self.rbl_listing, event.address, rbl_settings,
                                server.auto_whitelisted)
        if refusal and not session.conn.errors_left:
            await session.too_many_errors(f"MAIL FROM refused by {refusal.rule}")
        elif refusal:
            if refusal.rule.startswith("rbl."):
                server.counters.incr("spam_rbl")
                server.counters.incr("spam_messages")
            await self._refuse(refusal, event.address)
        else:
            self.sender = event.address
            self.mail_params = event.params
            await session.write(session.conn.send(R.R250_SENDER_OK))

    async def rcpt_to(self, event: RcptTo) -> None:
        """Answer RCPT TO: 250 (our postmaster, or a recipient the policy allows), or the
        policy's refusal, whose event waits for `settle_refusals` when it is the first."""
        session = self.session
        if await session.refuses_new_mail(self.sender):
            return
        current = session.settings_now()
        if self._is_our_postmaster(event.address):
            added = self._postmasters(current)
        else:
            refusal = check_recipient(event.address, session.client_ip,
                                      await session.confirmed_ptr(current), current)
            if refusal and not session.conn.errors_left:
                await session.too_many_errors(f"RCPT TO refused by {refusal.rule}")
                return
            if refusal:
                session.log.error("local", f"{refusal.rule}: {refusal.reason}")
                if self.first_refused is None:
                    self.first_refused = (event.address, refusal, session.server.clock.now())
                else:
                    self._record_refusal(event.address, refusal, rejects_message=False)
                await session.write(session.conn.send(refusal.reply))
                return
            added = [event.address]
        if len(self.recipients) + len(added) > session.conn.max_recipients:
            # SPEC §4 counts addresses, a <Postmaster>'s too (module rules)
            await session.write(session.conn.send(R.R452_TOO_MANY_RECIPIENTS))
            return
        self.recipients += added
        await session.write(session.conn.send(R.R250_RECIPIENT_OK))

    def end_recipients(self) -> None:
        """DATA: the recipients are final. Settle the refusals, and keep one copy of a
        recipient named twice, or as an administrator and as <Postmaster> (as Postfix's
        cleanup removes duplicate recipients)."""
        self.settle_refusals()
        self.recipients = list(dict.fromkeys(self.recipients))

    async def _rbl_listing_now(self) -> tuple[RblListing | None, Mapping]:
        """The client's RBL listing under the settings in force now, and those settings.

        SPEC §3 "every setting applies live": a session may stay open for hours (an MTA's
        connection cache), so each MAIL FROM reads the current rbl.*, whitelist and
        relay.allowed settings, not the session's snapshot. The connect-time answers are
        filtered again: a zone removed or disabled since no longer lists the client, and
        the current return codes decide (the usual reason to change a zone in a hurry is
        that it started listing everybody). A zone enabled after the client connected is
        not asked until the client's next connection (core/smtp/session.py rules: its
        answer could only refuse mail). A client of relay.allowed is one of the
        organisation's own mail hosts: its listing is ignored (as Postfix's
        permit_mynetworks comes before reject_rbl_client), or an RBL listing of its address
        range would lose all outbound mail; a host named there by its PTR name is
        recognised by the session's one confirmed PTR name (`confirmed_ptr`), the one the
        relay check of RCPT TO uses, asked now if host names were added since the
        connect."""
        session = self.session
        current = session.settings_now()
        if session.rbl_answers is None:
            return None, current
        listing = session.rbl_answers.listing(current)
        if listing is not None and listed_relay_client(
                session.client_ip, await session.confirmed_ptr(current), current):
            listing = None
        return listing, current

    def _is_our_postmaster(self, address: str) -> bool:
        """<Postmaster> (the only address without a domain), postmaster@ this gateway's
        own host name, or postmaster@[the address the client connected to], in any case
        (module rules)."""
        local, _, domain = address.rpartition("@")
        if not local:
            return True
        if local.lower() != "postmaster":
            return False
        server_ip = self.session.server_ip
        if server_ip is not None and address_literal(domain) == server_ip:
            return True
        return domain_form(domain) == domain_form(self.session.hostname)

    def _postmasters(self, settings: Mapping) -> list[str]:
        """Who gets mail for this gateway's postmaster (module rules)."""
        return list(settings["admin.emails"]) or [f"postmaster@{self.session.hostname}"]

    async def _refuse(self, refusal: Refusal, sender: str) -> None:
        """Refuse the MAIL FROM of `sender`: a rejected message."""
        session = self.session
        session.server.counters.incr("rejected")
        if refusal.reply == R.R452_INSUFFICIENT_STORAGE:
            session.server.refused_for_space()
        session.record(Action.REJECTED, sender=sender, rule=refusal.rule, info=refusal.reason,
                       result=str(refusal.reply.code))
        session.log.error("local", f"{refusal.rule}: {refusal.reason}")
        await session.write(session.conn.send(refusal.reply))

    def settle_refusals(self, *, rejected: bool = False) -> None:
        """Write the events of the recipients this transaction refused, now that it has
        ended (RSET, a new hello, QUIT, the connection gone) or has its recipients (DATA).

        Messages Rejected counts messages (guide Tables 7-1, 7-2): a transaction that went
        on with other recipients rejected none, and one whose recipients were all refused
        is one rejected message however many it named. So the first refusal of a
        transaction without an accepted recipient is the message's rejection (result: the
        reply code, and the Rejected counter); every other refused recipient gets the result
        RECIPIENT_REFUSED, which the counts leave out, with the reply code in its data.
        `rejected`: the message is rejected as a whole, by a refusal with an event of its
        own (delivery.reject_incoming's 421, core/smtp/session.py `refuses_new_mail`), so
        no refused recipient is its rejection (review18b R4: the pending one was a second
        rejected message)."""
        if self.first_refused is not None:
            (address, refusal, when), self.first_refused = self.first_refused, None
            self._record_refusal(address, refusal, at=when,
                                 rejects_message=not (self.recipients or rejected))

    def _record_refusal(self, address: str, refusal: Refusal, *, rejects_message: bool,
                        at: float | None = None) -> None:
        code = str(refusal.reply.code)
        if rejects_message:
            self.session.server.counters.incr("rejected")
            result, data = code, {}
        else:
            result, data = RECIPIENT_REFUSED, {"reply": code}
        self.session.record(Action.REJECTED, sender=self.sender, recipients=[address],
                            rule=refusal.rule, info=refusal.reason, result=result, data=data,
                            at=at)
