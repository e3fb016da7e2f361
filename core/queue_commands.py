"""`mailmoat queue` (SPEC §2): `queue list` reads the spool (read-only) and, for the
delivery attempts in progress, the running core's status snapshot; `queue
reprocess|drop|forward --hold` and `queue retry --slow` are requests the core carries out
through the commands table, as Postfix's postsuper and `postqueue -f` ask its queue
manager.
"""

from __future__ import annotations

import json
import math
import signal
import sqlite3
import threading
import time
from contextlib import contextmanager

from shared.busy import is_held_by_another
from shared.cli import CommandFailed, record_change, register
from shared.commands import HOLD_ACTIONS, SLOW_ACTIONS, WITHDRAWN
from shared.known_failures import LOCKED_REASON
from shared.paths import resolve_home
from shared.status import live_snapshot

__all__ = ["queue_command"]

DEFAULT_WAIT_SECONDS = 30.0     # how long a request's command waits for the core's result


def queue_command(args) -> int:
    """`queue list`, or a hold or slow-queue request: checked whole before it is written
    (exit 2, nothing requested), then carried out by the core; its result on stdout (exit
    0), or on stderr when the core could not carry it out or did not take it up (exit 1)."""
    from shared.home import open_db

    home = resolve_home(args.home)
    conn = open_db(home, writing=args.action != "list")
    try:
        if args.action == "list":
            return _queue_list(home, conn, args.queue or None)
        kind = {**HOLD_ACTIONS, **SLOW_ACTIONS}[args.action]
        request = {}
        if args.action == "forward":
            from shared.settings import FORWARD_SUBJECT
            from shared.settings_addresses import Email
            from shared.settings_types import RuleError
            try:
                address = Email().check(args.address)   # an IDN domain as its A-labels
            except RuleError as exc:
                raise CommandFailed(f"ADDRESS: {exc.rule}", 2) from None
            try:        # header text, as the console's and the settings' forward subjects
                subject = None if args.subject is None else FORWARD_SUBJECT.check(args.subject)
            except RuleError as exc:
                raise CommandFailed(f"--subject: {exc.rule}", 2) from None
            request = {"address": address, "subject": subject}
        if args.ids:
            _check_queued(home, args.acted_on, args.ids)
            request["ids"] = args.ids
        # from the request's writing on, Ctrl-C (or a kill) withdraws it or leaves it to the
        # core (the wait below): never a request written with no word of it
        with _stop_noted(active=not args.no_wait) as stopped:
            conn.execute("INSERT INTO commands (created_at, kind, args, requested_by) "
                         "VALUES (?, ?, ?, 'cli')", (time.time(), kind, json.dumps(request)))
            command_id = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            try:
                # who asked, as the console's hold buttons record it: the core's forwarded
                # and dropped rows say what was done, not by whom
                asked = {"command": kind, "args": request, "command_id": command_id}
                record_change(home, {}, f"queue {args.action} --{args.acted_on}", **asked)
                if args.no_wait:
                    print(f"request {command_id} queued for the core")
                    return 0
                return _await_result(home, conn, command_id, args, asked, stopped)
            except sqlite3.OperationalError as exc:
                if not is_held_by_another(exc):
                    raise
                # not "nothing was changed" (the boundary's words): the request is saved,
                # and given again it would be done twice (review20b R1)
                raise CommandFailed(
                    f"request {command_id} is saved but could not be followed or withdrawn: "
                    f"{LOCKED_REASON}; the core carries it out once the lock goes, so do not "
                    "give it again: its events say what was done") from None
    finally:
        conn.close()


def _await_result(home, conn, command_id: int, args, asked: dict, stopped: list) -> int:
    """Print the core's result of request `command_id` when it comes. A request the core has
    not taken up by the deadline, or when the wait is stopped (`_stop_noted`), is withdrawn
    (`_withdraw`); one it has taken up is seen through to the deadline, or left to the core
    when the wait is stopped. One taken up and then pending again (the core stopped before
    it began: a hold action or a retry waits for the core's look at hold/ and slow/ after
    its start, core/control.py) is withdrawn as one not taken up, said so."""
    started = time.monotonic()
    taken_up = False
    while True:
        row = conn.execute("SELECT state, result FROM commands WHERE id = ?",
                           (command_id,)).fetchone()
        if row["state"] == "done":
            print(row["result"])
            return 0
        if row["state"] == "failed":
            raise CommandFailed(row["result"])
        taken_up = taken_up or row["state"] == "running"
        waited = time.monotonic() - started
        if (stopped or waited >= args.wait) and _withdraw(
                conn, command_id, round(waited, 1) if stopped or taken_up else args.wait):
            why = _withdrawn_because(args.wait, stopped, taken_up) + "; nothing was changed"
            # the audit trail's request above did not happen (clispec19 B4)
            record_change(home, {}, f"queue {args.action} --{args.acted_on} (request {command_id} "
                          f"withdrawn: {why})", result=WITHDRAWN, **asked)
            raise CommandFailed(f"request {command_id} withdrawn: {why}")
        if stopped:
            raise CommandFailed(f"request {command_id} is being carried out by the core; only "
                                f"the wait for its result was {_STOPPED_BY[stopped[0]]}")
        time.sleep(0.2)     # pending, or past the deadline but running: see it through


def _withdrawn_because(wait: float, stopped: list, taken_up: bool) -> str:
    """Why `_await_result` withdrew its request: the core had not taken it up by the end
    of the wait, or had and then stopped before carrying it out (review24a C1: that was
    said as "the core did not take it up within 1 s", after a wait of many seconds)."""
    if taken_up:
        return "the core took it up but stopped before carrying it out"
    if stopped:
        return f"the wait was {_STOPPED_BY[stopped[0]]} before the core took it up"
    return f"the core did not take it up within {wait:g} s (is `mailmoat core` running?)"


# The signals that end a wait (`_stop_noted`), and the words for it.
_STOPPED_BY = {signal.SIGINT: "interrupted", signal.SIGTERM: "stopped (SIGTERM)",
               signal.SIGHUP: "stopped (SIGHUP: the terminal went away)"}


@contextmanager
def _stop_noted(*, active: bool = True):
    """A list to which Ctrl-C (SIGINT), a kill (SIGTERM) or a lost terminal (SIGHUP) adds
    the signal, instead of ending the process: KeyboardInterrupt was taken for a clean stop
    (exit 0: the request looked done), and the others ended it with no word, the request
    left for a core started later to act on whatever was held by then. A signal the process
    was started ignoring (a background job's Ctrl-C) stays ignored; off the main thread,
    where no handler can be set, and when not `active`, nothing changes."""
    stopped: list[signal.Signals] = []
    previous = {}
    if active and threading.current_thread() is threading.main_thread():
        for signum in _STOPPED_BY:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(
                    signum, lambda number, _frame: stopped.append(signal.Signals(number)))
    try:
        yield stopped
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _check_queued(home, queue: str, ids: list[str]) -> None:
    """CommandFailed (exit 2) unless every one of `ids` is in `queue` now. A list naming one
    that is not (a typing error, or a message gone since it was listed) asks for nothing,
    not for the rest: the command can be given again, corrected (docs/operations.md,
    Queues). One that leaves the queue before the core acts is named in its result."""
    from shared.spool import Spool

    if any(not queue_id for queue_id in ids):
        raise CommandFailed("--id: must not be empty", 2)
    queued = set(Spool(home.spool).list(queue))
    missing = [queue_id for queue_id in dict.fromkeys(ids) if queue_id not in queued]
    if missing:
        raise CommandFailed(f"not in the {queue} queue: " + ", ".join(missing)
                            + "; nothing was requested", 2)


def _withdraw(conn, command_id: int, waited: float) -> bool:
    """Withdraw a request the core has not taken up, so that exit status 1 means "not done"
    and a core started later does not act on what is in hold by then. False when the core
    took it up meanwhile (it is running: the caller waits for its result)."""
    withdrawn = conn.execute(
        "UPDATE commands SET state = 'failed', result = ?, done_at = ? "
        "WHERE id = ? AND state = 'pending'",
        (f"withdrawn by the requester after {waited} s", time.time(), command_id)).rowcount
    return withdrawn == 1


# A message to 50 recipients made one row of 800 characters (interop tester): the first few
# and how many more.
LISTED_RECIPIENTS = 3
# LAST ERROR of a corrupt/ entry that reads whole now: the reason noted when it was set
# aside, as the past reason it is (a damage noted then may have been repaired in corrupt/
# since: shown as if current, the repair looked as if it had not worked, review20b R2),
# else that its event says why (set aside by an older release, or the note not written)
NOTHING_WRONG_NOW = "nothing wrong found now"
SET_ASIDE_BECAUSE = f"{NOTHING_WRONG_NOW}; set aside because: "
SET_ASIDE_UNKNOWN = f"{NOTHING_WRONG_NOW}; its spool.corrupt event says why it was set aside"


def _queue_list(home, conn, only: str | None) -> int:
    from core.delivery import with_note
    from shared.report_format import display_width, padded
    from shared.shown_text import one_line
    from shared.spool import CORRUPT, DELIVERY_NOTE, Spool

    spool = Spool(home.spool)
    now = time.time()
    trying = _attempts_in_progress(conn, now)
    rows = []
    # corrupt/: entries the core set aside (an event and a Suspect Message alert said so);
    # FROM is the queue one came from ("?" when not known), LAST ERROR why it is there: what
    # is wrong with it as far as it can be read now, else that nothing is and what the core
    # noted when it set it aside (a second copy of a message kept in another queue, say; a
    # damage repaired since) — never the hold reason or delivery error its envelope still
    # carries, which would read as the fault
    listing_corrupt = only == CORRUPT
    for queue in (only,) if only else ("fast", "slow", "hold"):
        for queue_id in spool.list(queue):
            problem = (spool.problem(queue, queue_id) or _set_aside_why(spool, queue_id)
                       ) if listing_corrupt else None
            origin = (spool.set_aside_from(queue_id) or "?",) if listing_corrupt else ()
            try:
                env = spool.read_envelope(queue, queue_id)
            except (OSError, ValueError):
                if listing_corrupt:
                    rows.append((queue, queue_id, *origin, "", "", "", "", "", "", problem))
                continue  # moved or being written right now
            # what the message still waits for: its pending and deferred recipients and
            # their error, not those already delivered or bounced
            waiting = [r for r in env.recipients if r.status in ("pending", "deferred")]
            done = len(env.recipients) - len(waiting)
            shown = waiting[:LISTED_RECIPIENTS]
            recipients = ",".join(r.address for r in shown) + (
                f" (+{len(waiting) - len(shown)} more)" if len(waiting) > len(shown) else ""
            ) + (f" (+{done} done)" if done else "")
            # the error as events and DSNs show it: with a backup MX's refusal after it
            last = next((r for r in waiting if r.last_error), None)
            last_error = with_note(last.last_error, last.extra.get(DELIVERY_NOTE)) \
                if last else None
            rows.append((queue, queue_id, *origin, _age(now - env.received_at),
                         env.sender or "<>", recipients, env.size, env.attempts,
                         _next_attempt(queue, env.next_attempt_at, now,
                                       trying.get(queue_id)),
                         problem or env.hold_reason or last_error or ""))
    header = ("QUEUE", "ID", *(("FROM",) if listing_corrupt else ()), "AGE", "SENDER",
              "RECIPIENTS", "SIZE", "ATTEMPTS", "NEXT", "LAST ERROR")
    # a sender's addresses, a file name in a hold reason, a next hop's reply: a terminal must
    # not run their escape sequences nor show a right-to-left override's disguise, as
    # `mailmoat report` shows them (security21 B1)
    rows = [tuple(one_line(str(v)) for v in row) for row in rows]
    # padded by terminal columns: an SMTPUTF8 sender or a CJK reply is wider than its length
    widths = [max(display_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(padded(v, w) for v, w in zip(row, widths)).rstrip())
    return 0


def _attempts_in_progress(conn, now: float) -> dict[str, float]:
    """The running core's delivery attempts in progress, queue id -> since when, from its
    status snapshot; none when no core has written one lately (shared/status.py) or the
    snapshot cannot be read now: the listing is of the spool, and does without."""
    try:
        snapshot = live_snapshot(conn, now)
    except sqlite3.OperationalError:
        return {}
    attempts = (snapshot or {}).get("attempts")
    return attempts if isinstance(attempts, dict) else {}


def _next_attempt(queue: str, next_attempt_at: float | None, now: float,
                  trying_since: float | None = None) -> str:
    """NEXT: for a message the running core is trying to deliver now, for how long ("trying
    (5m02s)": a silent next hop holds an attempt up to its timeouts, tester28c C3); else for
    a slow entry when its next attempt is due as its envelope has it ("in 9m58s", or "due"
    when the time has come and the core has not tried it yet); nothing for the other
    queues (tester28c C2: nothing said when mail waiting after a failure would be tried
    again). A next hop that takes mail again moves its entries up before then
    (reordering), which only the core knows."""
    if trying_since is not None:
        return f"trying ({_age(now - trying_since)})"
    if queue != "slow" or next_attempt_at is None:
        return ""
    return f"in {_age(next_attempt_at - now)}" if next_attempt_at > now else "due"


def _set_aside_why(spool, queue_id: str) -> str:
    """LAST ERROR of the corrupt/ entry `queue_id` in which nothing is wrong now."""
    noted = spool.set_aside_reason(queue_id)
    return SET_ASIDE_BECAUSE + noted if noted else SET_ASIDE_UNKNOWN


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _queue_setup(parser) -> None:
    parser.add_argument("action", choices=("list", *HOLD_ACTIONS, *SLOW_ACTIONS))
    parser.add_argument("queue", nargs="?", help="list: fast | slow | hold (default: these "
                        "three) | corrupt (entries set aside); forward: the ADDRESS")
    parser.add_argument("--hold", action="store_true", help="act on the hold queue "
                        "(reprocess, drop, forward)")
    parser.add_argument("--slow", action="store_true", help="act on the slow queue (retry: "
                        "try its messages now)")
    parser.add_argument("--subject", help="forward: subject of the copies")
    parser.add_argument("--id", dest="ids", action="append", help="only this message "
                        "(repeatable; default: every message in the queue acted on)")
    parser.add_argument("--wait", type=float, help=f"seconds to wait for the core (default "
                        f"{DEFAULT_WAIT_SECONDS:g})")
    parser.add_argument("--no-wait", action="store_true", help="queue the request and return")


def _queue_run(args) -> int:
    """Bad input (exit 2) before anything is requested: an option or argument that says
    something else than the action (clispec19 B3: `queue list fast --hold` listed the fast
    queue, `reprocess slow --hold` acted on hold, `--wait -1` wrote a request and withdrew
    it at once)."""
    if args.subject is not None and args.action != "forward":
        raise CommandFailed(f"--subject: only forward takes a subject, not {args.action}", 2)
    if args.action == "forward":
        args.address = args.queue
        if not args.address:
            raise CommandFailed("forward needs an ADDRESS", 2)
    elif args.action == "list":
        if args.queue not in (None, "fast", "slow", "hold", "corrupt"):
            raise CommandFailed("queue: must be one of fast, slow, hold, corrupt", 2)
        flags = [queue for queue in ("hold", "slow") if getattr(args, queue)]
        if len(flags) > 1:
            raise CommandFailed("--hold, --slow: `queue list` lists one queue or all", 2)
        if flags and args.queue not in (None, flags[0]):
            raise CommandFailed(f"--{flags[0]}: `queue list` lists the queue it is given, here "
                                f"{args.queue}; for the {flags[0]} queue: queue list {flags[0]}",
                                2)
        if flags:
            args.queue = flags[0]
        given = {"--id": args.ids, "--wait": args.wait is not None, "--no-wait": args.no_wait}
        for option in (option for option, value in given.items() if value):
            raise CommandFailed(f"{option}: `queue list` lists whole queues and asks the core "
                                f"for nothing", 2)
    elif args.queue is not None:
        acted_on = "slow" if args.action in SLOW_ACTIONS else "hold"
        raise CommandFailed(f"{args.queue}: `queue {args.action}` takes no queue: it acts on "
                            f"the {acted_on} queue (--{acted_on})", 2)
    if args.slow and args.action not in ("list", *SLOW_ACTIONS):
        raise CommandFailed(f"--slow: the slow queue takes only retry, not {args.action}", 2)
    if args.action in SLOW_ACTIONS:
        if args.hold:
            raise CommandFailed(f"--hold: the hold queue takes reprocess, drop and forward, "
                                f"not {args.action}", 2)
        if not args.slow:
            raise CommandFailed(f"--slow: {args.action} acts on the slow queue; add it", 2)
        args.acted_on = "slow"
    elif args.action != "list":
        if not args.hold:
            raise CommandFailed(f"--hold: {args.action} acts on the hold queue; add it", 2)
        args.acted_on = "hold"
    if args.action != "list":
        if args.wait is None:
            args.wait = DEFAULT_WAIT_SECONDS
        if not (0 < args.wait < math.inf):
            raise CommandFailed("--wait: must be a number of seconds above 0", 2)
    return queue_command(args)


register("queue", "list and act on queued messages", _queue_setup, _queue_run)
