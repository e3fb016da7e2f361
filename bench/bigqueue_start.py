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
started --runs times and timed from the exec to the first 220 greeting; the median is
printed, and the ratio large/small. A start that reads every envelope before SMTP answers
grows with the queue: before bigqueue22, on the 2-CPU development machine under other
load, 3.5 s at 2,000 and 15.7 s at 20,000 (ratio 4.5); reading the slow and hold entries
after SMTP answers, 1.2 s and 3.0 s (ratio 2.5: what is left grows with the listings and
the lookup of each queued message's `accepted` event, core/app.py `_unrecorded`). With
--generated (2026-11-30, same machine): 2.2 s at 20,000 while the start read every bounce
first (review22b R4), 1.05 s since (1.7 s then for received mail, whose events it finds).
"""

from __future__ import annotations

import argparse
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


def greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return sock.recv(64).startswith(b"220")
    except OSError:
        return False


def time_to_220(home) -> float:
    port = stored_settings(home)["smtp.port"]
    start = time.monotonic()
    core = subprocess.Popen([sys.executable, "-m", "shared.cli", "core", "--home",
                             str(home.root)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        while not greets(port):
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
    home = make_home(root / f"home-{slow}", routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": 9}],
        delivery__retry_initial_seconds=3600, delivery__retry_max_seconds=14400, **ports)
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
