"""What Antivirus Settings says about the scan engine once its settings are saved (guide45
finding 3: saving Scan engine = clamd with a mistyped address said "Changes saved." and
then every message was held, with no sign of why).

Rules:
- When the saved settings scan with clamd, the console sends it a PING
  (shared/clamd_wire.py, which the core's clamd engine uses too; no core code in the
  console: review14 D1), at most PROBE_SECONDS to connect and as many for PONG, from the
  request's own thread: cheroot serves each request in a thread of its own, so no event
  loop waits on it.
- No PONG does not refuse the save: clamd may well be started after it. The page warns
  instead, as Configuration › Setup warns (a `warning` flash), naming the address, the
  problem and what becomes of mail until clamd answers: scan.unprocessable, as for any
  scanner error (SPEC §3), in the Status page's words (console/status/service.py).
"""

from __future__ import annotations

from typing import Any, Mapping

from console.status.service import unanswered_mail
from shared.clamd_wire import ping_problem

__all__ = ["save_warnings"]

CLAMD_ENGINES = ("clamd", "both")
# A request thread waits for the PING, and a clamd that takes longer to say PONG is one a
# scan would find slow as well.
PROBE_SECONDS = 2.0


def save_warnings(values: Mapping[str, Any]) -> list[str]:
    """What the page warns about after a save of `values` (the settings as saved)."""
    if not values["av.enabled"] or values["av.engine"] not in CLAMD_ENGINES:
        return []
    address = values["av.clamd.address"]
    problem = ping_problem(address, PROBE_SECONDS)
    if problem is None:
        return []
    return [f"clamd at {address} does not answer ({problem}). The settings are saved; "
            f"until clamd answers, {unanswered_mail(values)}."]
