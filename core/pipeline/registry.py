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

from core.pipeline.checks import (container, content_rules, disclaimer, encrypted, filename,
                                  malformed, subject, unprocessable)

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
    Check("subject", subject.check),              # subject.lines
    Check("filename", filename.check),            # filename.patterns -> remove_part
    Check("content_rules", content_rules.check),  # rules.content
    # 4./5. antivirus (issue 6) and antispam (issue 7) go here
    # 6. disclaimer
    Check("disclaimer", disclaimer.check),        # disclaimer.* for non-local destinations
)
