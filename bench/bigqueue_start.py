"""A start over a large queue (bigqueue22): `mailmoat core` until SMTP answers 220, with a
small and a large queue, and the ratio of the two.

    python -m bench.bigqueue_start [--small 2000] [--large 20000] [--runs 3] [--port P]
                                   [--generated]

For each size a data home (temporary, pinned to loopback: tests/support/core.py) gets that
many messages in slow/ (a deferred recipient each, next attempt in an hour) and a quarter as
many in hold/, committed through the spool's own accept path (shared/spool.py, in batches
of one commit each) with the `accepted` event each would have from its reception (so the
start has no lost event to write, as after a clean stop); with --generated, bounces
Mailmoat made instead (null sender, no `accepted` event: a slow queue after an outage, whose
envelopes the start read before SMTP answered until review22b R4). Then `mailmoat core` is
started --runs times and timed from the exec to the first 220 greeting of that home's core
(its smtp.hostname, one per run: another server answering on the port, a process that bound
it beside the core with SO_REUSEPORT, is an error, not a start: review24a O1, a start timed
at 0.03 s); the median is printed, and the ratio large/small.

A start that reads every envelope before SMTP answers grows with the queue: before
bigqueue22 (an earlier run, on the 2-CPU development machine under other load) 3.5 s at
2,000 and 15.7 s at 20,000 (ratio 4.5). One run of all four cases, 2026-11-30 19:02-19:06
UTC, same machine under other load (load average about 3), this code and the code before
4f7d51c (review22b R4) at 2,000 and 20,000: received mail 1.00 s and 1.82 s (before: 1.15 s
and 2.32 s; what is left grows with the listings and the lookup of each queued message's
`accepted` event, core/app.py `_unrecorded`); --generated 0.87 s and 1.13 s (before, the
start reading every bounce first: 1.10 s and 1.90 s). Under that load the medians vary by a
third from run to run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from shared.events import Action, EventWriter  # noqa: E402
from shared.spool import Envelope, Spool, new_queue_id  # noqa: E402
from tests.support.core import make_home, stored_settings  # noqa: E402  (shared with tests)
from tests.support.processes import stop_process            # noqa: E402

BATCH = 500
BODY = (b"From: s@ext.test\r\nTo: u@local.test\r\nSubject: queued\r\n\r\n"
        + b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 35)


def fill(home, slow: int, hold: int, generated: bool = False) -> None:
    spool = Spool(home.spool)
    writer = EventWriter(home.db, process="core")
    now = time.time()
    for queue, count in (("slow", slow), ("hold", hold)):
        for start in range(0, count, BATCH):
            prepared = []
            for _ in range(min(BATCH, count - start)):
                queue_id = new_queue_id()
                incoming = spool.open_incoming(queue_id)
                incoming.write(BODY)
                fields = ({"processed": True, "attempts": 1, "next_attempt_at": now + 3600}
                          if queue == "slow" else {"hold_reason": "bench: held"})
                envelope = Envelope.new(queue_id, "" if generated else "s@ext.test",
                                        ["u@local.test"], is_generated=generated,
                                        is_bounce=generated, **fields)
                if queue == "slow":
                    envelope.recipients[0].status = "deferred"
                prepared.append(incoming.prepare(envelope, sync=False))
                if not generated:
                    writer.record(Action.ACCEPTED, queue_id=queue_id, sender="s@ext.test",
                                  recipients=["u@local.test"])
            spool.commit(prepared, queue)
    writer.close()


def greets(port: int, hostname: str) -> bool:
    """Whether the core whose smtp.hostname is *hostname* greets on *port*. Another server's
    greeting there is an error, not a start: a process of the same user can bind the port
    beside the core (SO_REUSEPORT) and answer first (review24a O1: a start timed at 0.03 s)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            greeting = sock.recv(256)
    except OSError:
        return False
    if greeting.startswith(f"220 {hostname} ".encode()):
        return True
    if greeting.startswith(b"220"):
        raise RuntimeError(f"port {port} answered by another server: {greeting!r}")
    return False


def time_to_220(home) -> float:
    settings = stored_settings(home)
    port, hostname = settings["smtp.port"], settings["smtp.hostname"]
    start = time.monotonic()
    core = subprocess.Popen([sys.executable, "-m", "shared.cli", "core", "--home",
                             str(home.root)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        while not greets(port, hostname):
            if core.poll() is not None:
                raise RuntimeError(f"core exited with {core.returncode}")
            if time.monotonic() - start > 600:
                raise TimeoutError("no 220 within 600 s")
            time.sleep(0.02)
        return time.monotonic() - start
    finally:
        stop_process(core, 120, signal.SIGINT)


def measure(root: Path, slow: int, runs: int, port: int, generated: bool = False) -> float:
    ports = {"smtp__port": port, "http__port": port + 1, "https__port": port + 2} if port \
        else {}
    home = make_home(root / f"home-{slow}", smtp__hostname=f"bench{os.getpid()}-{slow}.test",
                     routing__local=[{"match": "local.test", "relay": "127.0.0.1", "port": 9}],
                     delivery__retry_initial_seconds=3600, delivery__retry_max_seconds=14400,
                     **ports)
    began = time.monotonic()
    fill(home, slow, slow // 4, generated)
    filled = time.monotonic() - began
    times = [time_to_220(home) for _ in range(runs)]
    median = statistics.median(times)
    what = " (bounces)" if generated else ""
    print(f"{slow:6d} slow + {slow // 4:5d} held{what} (filled in {filled:.0f} s): start to 220 "
          f"median {median:.2f} s of {', '.join(f'{t:.2f}' for t in times)}", flush=True)
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=0,
                        help="SMTP port (HTTP, HTTPS the next two); default: free ones")
    parser.add_argument("--generated", action="store_true",
                        help="bounces Mailmoat made, with no accepted event, not received mail")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mailmoat-bigqueue-"))
    try:
        small = measure(root, args.small, args.runs, args.port, args.generated)
        large = measure(root, args.large, args.runs, args.port, args.generated)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"ratio {args.large}/{args.small}: {large / small:.2f} (the queue sizes' ratio: "
          f"{args.large / args.small:.0f})")


if __name__ == "__main__":
    main()
