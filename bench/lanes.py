"""Small mail behind large mail: how long ordinary messages wait between their 250 and
delivery while large messages keep the scanning workers busy (core/pipeline/workers.py
rule 7; hostile18 B2, which measured up to 52 s behind nine 49 MB messages).

One run: a `core` in this process (the real filtering pipeline in its worker processes, the
test suite's home with default settings) relays local.test to a sink on loopback. LARGE
messages of --large-mb MB of random words are sent at once, each on its own connection,
while a probe client sends a small message every PROBE_SECONDS until every large one has
been delivered. Each probe's latency runs from the 250 its client got to the moment the sink
took the message. Prints one line: the probes' median, mean and max, and how long the large
messages took in all (with --checkout, the ratios of the two trees' figures: the lanes must
not buy the small mail's wait with the large mail's throughput, review2 R5).

    python -m bench.lanes [--large 9] [--large-mb 49] [--checkout /path/to/other/tree]

With --large over 16 (the queue manager's tasks for large messages, core/spool/manager.py
rule 13) large messages also wait to be taken up, and the probes show whether small mail is
taken up past them: before rule 13 a probe waited in the fast queue behind them.

With --checkout the same run is made with the core of another tree (e.g. a `git archive` of
the commit before), so both figures come from one machine and one invocation. Nothing
leaves loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TREE = Path(os.environ.get("MAILMOAT_BENCH_TREE", REPO))   # whose core runs (--checkout)
sys.path.insert(0, str(TREE))

PROBE_SECONDS = 0.3
SENDER, RECIPIENT = "sender@client.test", "user@local.test"


def large_message(index: int, megabytes: int) -> bytes:
    """Random lowercase words in lines of about 70 octets: text every check reads."""
    rng = random.Random(index)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
             for _ in range(5000)]
    lines, size = [], 0
    while size < megabytes << 20:
        line = " ".join(rng.choice(words) for _ in range(12)) + "\r\n"
        lines.append(line)
        size += len(line)
    head = (f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: large {index}\r\n"
            f"Message-ID: <large{index}@client.test>\r\n\r\n")
    return (head + "".join(lines)).encode()


def small_message(index: int) -> bytes:
    return (f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: probe {index}\r\n"
            f"Message-ID: <probe{index}@client.test>\r\n\r\nAn ordinary message.\r\n").encode()


def _subject(data: bytes) -> str:
    for line in data[:4096].split(b"\r\n"):
        if line.startswith(b"Subject: "):
            return line[9:].decode()
    return ""


def measure(large: int, large_mb: int) -> dict:
    import trio

    from core.app import run_core
    from tests.support.core import routed_home
    from tests.support.sink import Sink

    arrived: dict[str, float] = {}

    def on_data(message):
        arrived[_subject(message.data)] = time.monotonic()
        message.data = b""              # the sink keeps what it took: not 49 MB each
        return None                     # the sink's usual 250

    bodies = [large_message(i, large_mb) for i in range(large)]
    accepted: dict[str, float] = {}
    started = time.monotonic()

    def send(subject: str, data: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=600) as client:
            client.sendmail(SENDER, [RECIPIENT], data)
        accepted[subject] = time.monotonic()

    def clients() -> None:
        senders = [threading.Thread(target=send, args=(f"large {i}", body))
                   for i, body in enumerate(bodies)]
        for thread in senders:
            thread.start()
        probe = 0
        while not all(f"large {i}" in arrived for i in range(large)):
            send(f"probe {probe}", small_message(probe))
            probe += 1
            time.sleep(PROBE_SECONDS)
        for thread in senders:
            thread.join()
        deadline = time.monotonic() + 120
        while (not all(f"probe {i}" in arrived for i in range(probe))
               and time.monotonic() < deadline):
            time.sleep(0.05)

    async def main() -> None:
        nonlocal port
        core = await nursery_holder.start(run_core, home)
        port = core.smtp_addresses[0][1]
        await trio.to_thread.run_sync(clients)
        core.cancel_scope.cancel()

    async def run() -> None:
        nonlocal nursery_holder
        async with trio.open_nursery() as nursery:
            nursery_holder = nursery
            await main()

    port = 0
    nursery_holder = None
    with tempfile.TemporaryDirectory() as root, Sink() as sink:
        sink.data_reply = on_data
        home = routed_home(Path(root), sink)
        trio.run(run)
    probes = [arrived[s] - accepted[s] for s in accepted
              if s.startswith("probe") and s in arrived]
    return {"tree": str(TREE), "large": large, "large_mb": large_mb,
            "probes": len(probes), "lost": sum(1 for s in accepted if s not in arrived),
            "median_s": round(statistics.median(probes), 2),
            "mean_s": round(statistics.mean(probes), 2), "max_s": round(max(probes), 2),
            "large_done_s": round(max(arrived[f"large {i}"] for i in range(large))
                                  - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=9)
    parser.add_argument("--large-mb", type=int, default=49)
    parser.add_argument("--checkout", help="another tree whose core to measure as well")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.large, args.large_mb)))
        return
    runs = []
    for tree in filter(None, [args.checkout, str(REPO)]):
        # each run in a process of its own, with that tree's modules
        out = subprocess.run([sys.executable, __file__, "--json", "--large", str(args.large),
                              "--large-mb", str(args.large_mb)], check=True,
                             capture_output=True, text=True,
                             env={**os.environ, "MAILMOAT_BENCH_TREE": tree,
                                  "PYTHONPATH": tree}).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), flush=True)
    if len(runs) == 2:
        before, after = runs
        print(f"small-mail latency behind {args.large} x {args.large_mb} MB: max "
              f"{before['max_s']} -> {after['max_s']} s, mean {before['mean_s']} -> "
              f"{after['mean_s']} s (ratio of means {after['mean_s'] / before['mean_s']:.3f}); "
              f"the large ones took {before['large_done_s']} -> {after['large_done_s']} s "
              f"(ratio {after['large_done_s'] / before['large_done_s']:.3f})")


if __name__ == "__main__":
    main()
