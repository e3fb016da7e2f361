"""The checks, in SPEC §5 order — one line each (STYLE §1: a new check is one module and
one line here; removing one is deleting both).

Each entry is (name, function). A function is `check(view, settings) -> list[Finding]`:
pure, reading a MessageView and a settings snapshot (a plain dict), never delivering,
logging or editing. The runner (core/pipeline/run.py) calls them in this order; a check
that raises becomes a scan_error finding handled by `scan.unprocessable` (invariant 8).

Where the other areas plug in (docs/filtering.md "Extension points"):
    - antivirus (issue 6): one line after "content_rules" — `("antivirus", antivirus.check)`,
      reading `scan_policy.selected(view, settings)` and returning remove_part /
      replace_part / drop / quarantine("virus") findings with notify="virus";
    - antispam (issue 7): blacklist and RBL lines before "subject"; spam rules after
      "content_rules" using core.pipeline.rules; the heuristic/premium engine after antivirus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from core.pipeline.checks import (antispam, antivirus, blacklist, container, content_rules,
                                  disclaimer, encrypted, filename, malformed, rbl, spam_rules,
                                  subject, unprocessable)

__all__ = ["Check", "CHECKS"]


class Check(NamedTuple):
    name: str
    run: Callable


CHECKS: tuple[Check, ...] = (
    # 2. decomposition results (SPEC §5 step 2)
    Check("container", container.check),          # container.* limits -> drop
    Check("unprocessable", unprocessable.check),  # scan.unprocessable
    Check("malformed", malformed.check),          # MIME defects -> malformed (log)
    Check("encrypted", encrypted.check),          # encrypted.action
    # 3. blocking
    Check("blacklist", blacklist.check),          # blacklist.entries (issue 7)
    Check("rbl", rbl.check),                      # rbl.* non-reject actions (issue 7)
    Check("subject", subject.check),              # subject.lines
    Check("filename", filename.check),            # filename.patterns -> remove_part
    Check("content_rules", content_rules.check),  # rules.content
    Check("spam_rules", spam_rules.check),        # rules.spam -> spam, score 100 (issue 7)
    # 4. antivirus
    Check("antivirus", antivirus.check),          # av.* engines + heuristics (issue 6)
    # 5. antispam
    Check("antispam", antispam.check),            # heuristic.* (issue 7)
    # 6. disclaimer
    Check("disclaimer", disclaimer.check),        # disclaimer.* for non-local destinations
)
