"""What runs inside a worker process for one message: decompose -> checks -> verdict ->
rewrite (ARCHITECTURE invariant 2; the trio side is workers.py).

`process_message(path, context, settings)` reads the message file itself (only the path
crosses the process boundary), and returns a `WorkerOutcome` of plain data: the findings,
the verdict, the facts notifications need, and the path of the rewritten message (a temp
file beside the original, fsync'd) when the verdict edits it. It never renames over the
message: the core does that after it has the outcome, so a worker killed half way leaves
the message as it was.

Rules
    1. A check that raises becomes a scan_error finding asking for `scan.unprocessable`
       (STYLE §1, invariant 8); the other checks still run.
    2. `fault` is a test hook only: "module:function" or "/file.py:function" the worker calls with
       the path before decomposing (tests inject crashes and hangs with it). Shipped code
       passes None; nothing in a message or in the settings can set it.
    3. The scanners that wait on another process (clamd) get one deadline per message,
       SCAN_MARGIN_SECONDS before the worker's time limit (workers.PROCESS_TIMEOUT_SECONDS,
       SPEC §4) counted from when this function starts, in the settings copy under
       RUNTIME_SCAN_DEADLINE (core/scan/engines.py). Running out is then a scan_error
       finding this worker still returns, not a worker stopped and counted as a crash. In
       a batch (workers.py rule 4) the limit covers the whole round trip; a batch that
       overruns runs again one message at a time, where the deadline is exact.
    4. The outcome carries the message's last exchange with clamd (core/scan/clamd.py rule
       6), for the core to say whether clamd answers (core/status.py `ClamdHealth`); one
       left over from an earlier message in this worker is dropped before the checks run.
    5. Memory per message (ARCHITECTURE invariant 3; workers.py rule 6): the work on one
       message may use at most `memory_allowance_octets` more than the worker held when it
       began, and never more than the worker's share of the memory available when it
       began (workers.memory_share_octets, read for each message: the memory available
       divided by the core's worker slots, RUNTIME_WORKER_SLOTS in the settings copy, 1
       when the caller names none), so that the limit, not the machine's OOM killer,
       stops it. The allowance is derived from what bounds a message's work: the
       message's own size and what decomposition may extract from it (container.max_ratio
       times the message, at most container.max_total_mb). The share never lowers the
       limit below MEMORY_HEADROOM_MIB, what any message, however small, is given: below
       it every message, a definitions reload among them, would meet the limit and be
       held, and mail would stop on a small machine that worked without the limit; there
       the OOM killer stays the last resort and the finding's reason says the memory is
       too little for the workers. A MemoryError anywhere in the work ends the work on
       that message: the outcome is one scan_error finding of rule MEMORY_LIMIT_RULE
       asking for `scan.unprocessable`, naming the limit. Not a crash: the worker stays
       and takes the next message. No handler on the way swallows it (`run_checks` and
       every broad handler in core/pipeline, core/scan and the shared/ modules they import
       let it through: tests/unit/pipeline/test_mem18_memory_error_handlers.py).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.pipeline import workers
from core.pipeline.decompose import decompose_bytes
from core.pipeline.decompose.limits import MIB
from core.pipeline.findings import Finding, check_failed
from core.pipeline.registry import CHECKS
from core.pipeline.rewrite import rewrite
from core.pipeline.verdict import DELIVERING, Verdict, carried_out, decide
from core.scan.clamd import Contact, take_contact
from core.scan.engines import RUNTIME_SCAN_DEADLINE

__all__ = ["process_message", "WorkerOutcome", "REWRITE_SUFFIX", "is_automatic",
           "SCAN_MARGIN_SECONDS", "memory_allowance_octets", "memory_limit_octets",
           "MEMORY_LIMIT_RULE"]

REWRITE_SUFFIX = ".rewrite.tmp"
MAX_LISTED_FILES = 50
# Rule 3: what the worker still does after a scanner gave up, inside its limit: the
# heuristics and the checks after antivirus, the verdict, the rewrite (writing and fsyncing
# a copy of the message, up to size.max_mb) and sending the outcome back. Each of these
# takes well under a second for ordinary mail; ten seconds leave room for a large message
# on a busy disk while the scanners keep most of the limit.
SCAN_MARGIN_SECONDS = 10.0

# Rule 5, measured on the tester's 49 MB messages (hostile18 B1; core/pipeline/decompose
# and the checks on text): the worst, 36 MB of "<a " in base64, grew a worker's data by 23
# times the message; 45 MB of text extracted from a gzip member by under 4 times itself. A
# worker's first message, loading the definitions, takes about 50 MB: the headroom covers
# that, a definitions reload beside the old ones, and what small messages need.
MEMORY_HEADROOM_MIB = 256
MEMORY_PER_MESSAGE_MB = 32              # per MB of the message
MEMORY_PER_EXTRACTED_MB = 4             # per MB it may extract (container.max_ratio, _total_mb)
MEMORY_LIMIT_RULE = "pipeline.memory_limit"


@dataclass
class WorkerOutcome:
    findings: list[Finding]
    verdict: Verdict
    rewritten: str | None = None          # temp file to rename over the message
    rewritten_is_8bit: bool = False       # ... with octets over 127 (BODY=8BITMIME)
    subject: str = ""
    parts: int = 0
    files: list[str] = field(default_factory=list)      # attachment names, for MSGINFO
    defects: int = 0
    extracted_octets: int = 0
    auto_submitted: bool = False          # RFC 3834 Auto-Submitted other than "no"
    clamd: Contact | None = None          # its last exchange with clamd (rule 4)


def memory_allowance_octets(settings, message_octets: int) -> int:
    """Rule 5: how much more memory the work on a message of `message_octets` may use, by
    the message (before the worker's share of the machine caps it)."""
    message_mb = message_octets / MIB
    extracted_mb = min(settings["container.max_total_mb"],
                       settings["container.max_ratio"] * message_mb)
    return int((MEMORY_HEADROOM_MIB + MEMORY_PER_MESSAGE_MB * message_mb
                + MEMORY_PER_EXTRACTED_MB * extracted_mb) * MIB)


def memory_limit_octets(settings, message_octets: int, *where) -> tuple[int, str]:
    """Rule 5: (the limit per message, what set it), from the memory available now.
    `where`: the /proc and cgroup directories to read instead (tests)."""
    allowance = memory_allowance_octets(settings, message_octets)
    slots = settings.get(workers.RUNTIME_WORKER_SLOTS, 1)
    share = workers.memory_share_octets(slots, *where)
    if share is None or share >= allowance:
        return allowance, "from the message's size and the container limits"
    if share >= MEMORY_HEADROOM_MIB * MIB:
        return share, "this worker's share of the memory available"
    return MEMORY_HEADROOM_MIB * MIB, (
        f"the least any message is given; this worker's share of the memory available is "
        f"only {share // MIB} MB: too little memory for {slots} scanning workers")


def run_checks(view, settings, checks=CHECKS) -> list[Finding]:
    findings: list[Finding] = []
    for check in checks:
        try:
            # what can be done of what it asks (verdict rule 5), for its event to say so
            findings.extend(carried_out(f) for f in check.run(view, settings))
        except MemoryError:               # rule 5: the message's, not this check's
            raise
        except Exception as exc:          # rule 1
            findings.append(check_failed(check.name, exc, settings["scan.unprocessable"]))
    return findings


def process_message(path: str, context: dict, settings: dict,
                    fault: str | None = None) -> WorkerOutcome:
    # rule 3; the limit is read here, not bound at import, so that a test running the
    # worker inline can shorten it
    settings = {**settings, RUNTIME_SCAN_DEADLINE: time.monotonic()
                + workers.PROCESS_TIMEOUT_SECONDS - SCAN_MARGIN_SECONDS}
    limit, source = memory_limit_octets(settings, os.path.getsize(path))
    with workers.limited_memory(limit):
        try:
            return _process(path, context, settings, fault)
        except MemoryError:
            pass                          # rule 5; its frames (and their memory) are gone here
    reason = (f"processing needed more memory than the limit per message of "
              f"{limit // MIB} MB ({source})")
    findings = [Finding(rule=MEMORY_LIMIT_RULE, action=settings["scan.unprocessable"],
                        event="scan_error", reason=reason,
                        data={"memory_limit_mb": limit // MIB})]
    return WorkerOutcome(findings=findings, verdict=decide(findings))


def _process(path: str, context: dict, settings: dict, fault: str | None) -> WorkerOutcome:
    if fault:                              # rule 2: tests only
        _load_fault(fault)(path)
    raw = Path(path).read_bytes()
    view = decompose_bytes(raw, context, settings)
    take_contact()                         # rule 4: an earlier message's
    findings = run_checks(view, settings)
    verdict = decide(findings)
    outcome = WorkerOutcome(
        findings=findings, verdict=verdict, subject=view.subject, parts=len(view.parts),
        files=[p.filename for p in view.files() if p.filename][:MAX_LISTED_FILES],
        defects=len(view.defects), extracted_octets=view.extracted_octets,
        auto_submitted=is_automatic(view), clamd=take_contact())
    if verdict.disposition in DELIVERING and (verdict.edits or verdict.forward_subject):
        new = rewrite(raw, view, verdict.edits, forward_subject=verdict.forward_subject)
        if new != raw:
            outcome.rewritten = _write_temp(path, new)
            outcome.rewritten_is_8bit = not new.isascii()
    return outcome


_AUTOREPLY_FIELDS = ("X-Autoreply", "X-Autorespond")


def is_auto_submitted(value: str) -> bool:
    """RFC 3834 §5: an Auto-Submitted value other than "no" (a keyword, possibly followed by
    parameters after ";") marks a message made by a program (a vacation reply, a report)."""
    return value.split(";", 1)[0].strip().lower() != "no"


def is_automatic(view) -> bool:
    """A message a program sent in answer to another: any Auto-Submitted field not "no"
    (RFC 3834), or the older marks of vacation programs (Precedence: auto_reply,
    X-Autoreply, X-Autorespond)."""
    if any(is_auto_submitted(value) for value in view.header_all("Auto-Submitted")):
        return True
    if any(v.strip().lower() == "auto_reply" for v in view.header_all("Precedence")):
        return True
    return any(view.header(name) is not None for name in _AUTOREPLY_FIELDS)


def _load_fault(fault: str):
    """'package.module:function' or '/path/to/file.py:function'."""
    where, _, name = fault.rpartition(":")
    if where.endswith(".py"):
        import importlib.util
        spec = importlib.util.spec_from_file_location("mailmoat_test_fault", where)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, name)


def _write_temp(path: str, data: bytes) -> str:
    temp = path + REWRITE_SUFFIX
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    return temp
