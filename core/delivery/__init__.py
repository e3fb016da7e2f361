"""Delivery: routing, DNS, the SMTP client driver, connection pool and DSNs.

Other packages import from here:
- `route(domain, settings) -> NextHop`, `domain_of(address)`, `relay_host(name)` — routing.py
  (pure)
- `Resolver(settings)` — DNS for delivery and SMTP-time policy (`candidates`, `ptr`, `lookup`)
- `Deliverer(settings=, events=, clock=, resolver=, hostname=, diagnostics_dir=, ...)` with
  `await deliver(hop, envelope, recipients, message_path, settings) -> [RecipientResult]`
  and `run()` for idle-connection upkeep
- `compose_dsn(...)`, `RecipientReport`, `should_notify(envelope)` — RFC 3464 bounces/notices;
  `with_note(text, note)` — a result's text with delivery's note, as events and DSNs show it;
  `GENERATED_LINESEP` — the line end of mail the core writes (bounce.py rule 7)
- `NO_ANSWER_STATUS` — the status of a failure to open a session with a next hop (session.py
  rule 6), which raises the SMTP Connection Failure alert (core/notify.py)
"""

from core.delivery.bounce import (GENERATED_LINESEP, RecipientReport, compose_dsn,
                                  dsn_from_address, should_notify, with_note)
from core.delivery.deliver import Deliverer, RecipientResult, unverified_tls_context
from core.delivery.mx import Candidate, LookupFailed, Resolver, candidates, make_resolver
from core.delivery.routing import NextHop, domain_of, relay_host, route
from core.delivery.session import NO_ANSWER_STATUS, DeliveryError, Timeouts

__all__ = [
    "GENERATED_LINESEP", "NO_ANSWER_STATUS", "Candidate", "Deliverer", "DeliveryError",
    "LookupFailed", "NextHop", "RecipientReport", "RecipientResult", "Resolver", "Timeouts",
    "candidates", "compose_dsn", "domain_of", "dsn_from_address", "make_resolver",
    "relay_host", "route", "should_notify", "unverified_tls_context", "with_note",
]
