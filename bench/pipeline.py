"""Filtering-pipeline throughput on a realistic mix, beside pass-through, in the same run.

The mix is the shared SpamAssassin ham/spam corpus (../shared/corpus/spamham: real mail of
2002-2003 with attachments, HTML, odd encodings), a deterministic sample of --messages.
Each mode runs the same harness: N client threads (smtplib, one connection each) send the
sample to a `core` child process on loopback, which relays to Postfix's smtp-sink; a run
counts from the first connection until the core's fast and slow queues are empty, after a
warm-up batch (WARMUP_MESSAGES) that lets the worker processes start.

    passthrough  the core with the pass-through pipeline (the SMTP-core issue's seam)
    filtering    the core with the filtering pipeline and every filtering check enabled by
                 bench/filtering-profile.json (content rules, subject lines, file names,
                 container limits, encrypted containers, relay and address rules,
                 scan policy, disclaimer), decomposition in worker processes
    antispam     filtering, plus the antispam checks of bench/antispam-profile.json
                 (custom whitelist and blacklist, spam rules, the heuristic engine with
                 X-Bulk; spam is marked and delivered, so every message reaches the sink)

    python -m bench.pipeline [--messages 1500] [--concurrency 10]
                             [--modes passthrough,filtering,antispam]

Prints messages/s and MB/s per mode and the ratio filtering/passthrough (the goal: >= 0.5),
and antispam/filtering when both ran.
Nothing leaves loopback; corpus mail goes only to the local sink.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.mail import smtp_ready  # noqa: E402  (shared with the tests)
from tests.support.processes import stop_process  # noqa: E402
CORPUS = REPO.parent / "shared" / "corpus"
PROFILES = {"filtering": ("filtering-profile.json",),
            "antispam": ("filtering-profile.json", "antispam-profile.json")}
MIB = 1 << 20
WARMUP_MESSAGES = 40     # sent before the clock starts: steady-state figures, not start-up


def sample(count: int) -> list[bytes]:
    rows = []
    for line in (CORPUS / "MANIFEST").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        path, _sha, label = line.split("\t")
        if path.startswith("spamham/") and label in ("ham", "spam"):
            rows.append(path)
    rows.sort(key=lambda p: hashlib.sha256(p.encode()).hexdigest())
    out = []
    for path in rows:
        data = smtp_ready((CORPUS / path).read_bytes())
        if data is None:
            continue             # SMTP refuses text lines over 1000 octets (SPEC §4)
        out.append(data)
        if len(out) == count:
            break
    return out


def serve(home_dir: str, mode: str) -> None:
    """The core child: run_core on the home, with the pass-through pipeline if asked."""
    import trio

    import core.pipeline.service as service
    from core.app import run_core
    from core.pipeline import PassThroughPipeline
    from shared.paths import DataHome

    class PassThrough(PassThroughPipeline):
        """The seam's default, with the service interface run_core starts (hooks, run)."""
        def __init__(self):
            self.hooks = []

        async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
            task_status.started()
            await trio.sleep_forever()

    if mode == "passthrough":
        service.FilteringPipeline = lambda *a, **k: PassThrough()
    trio.run(run_core, DataHome(Path(home_dir)))


def _send_all(port: int, messages: list[bytes], concurrency: int) -> float:
    chunks = [messages[i::concurrency] for i in range(concurrency)]
    errors: list[BaseException] = []

    def worker(chunk):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
                for data in chunk:
                    client.sendmail("bench@source.test", ["user@local.test"], data)
        except BaseException as exc:            # reported after the run
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} client errors, first: {errors[0]!r}")
    return time.monotonic() - started


def _queued(home) -> int:
    return sum(1 for q in ("fast", "slow") for _ in home.queue(q).iterdir())


def run_mode(mode: str, messages: list[bytes], concurrency: int) -> dict:
    sys.path.insert(0, str(REPO))
    from bench.throughput import SmtpSink, tree_cpu_seconds, wait_port
    from tests.support.core import make_home

    profile = {}
    for name in PROFILES.get(mode, ()):
        profile.update(json.loads(Path(__file__).with_name(name).read_text()))
    sink = SmtpSink()
    root = Path(tempfile.mkdtemp(prefix=f"bench-pipeline-{mode}-"))
    home = make_home(root, smtp__max_incoming=max(concurrency, 15),
                     routing__local=[{"match": "local.test", "relay": "127.0.0.1",
                                      "port": sink.port}],
                     **{k.replace(".", "__"): v for k, v in profile.items()})
    from shared import db
    from shared.settings_store import load
    conn = db.connect(home.db)
    port = load(conn)["smtp.port"]
    conn.close()
    process = subprocess.Popen([sys.executable, "-m", "bench.pipeline", "--serve", str(root),
                                mode], cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        _send_all(port, messages[:WARMUP_MESSAGES], 2)   # worker processes started, caches warm
        while _queued(home):
            time.sleep(0.02)
        cpu_before = tree_cpu_seconds(process.pid)
        started = time.monotonic()
        accept = _send_all(port, messages, concurrency)
        while _queued(home):
            time.sleep(0.02)
        total = time.monotonic() - started
        cpu = tree_cpu_seconds(process.pid) - cpu_before
        held = sum(1 for _ in home.queue("hold").iterdir())
    finally:
        stop_process(process)
        sink.stop()
        shutil.rmtree(root, ignore_errors=True)
    octets = sum(len(m) for m in messages)
    return {"mode": mode, "messages": len(messages), "seconds": total,
            "accept_seconds": accept, "msgs_per_s": len(messages) / total,
            "mb_per_s": octets / MIB / total, "cpu_s_per_1000": cpu * 1000 / len(messages),
            "held": held}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--modes", default="passthrough,filtering,antispam")
    parser.add_argument("--serve", nargs=2, metavar=("HOME", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(*args.serve)
        return 0
    if not (CORPUS / "MANIFEST").exists():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 1
    messages = sample(args.messages)
    print(f"mix: {len(messages)} ham/spam messages, {sum(map(len, messages)) / MIB:.1f} MB, "
          f"concurrency {args.concurrency}, {os.cpu_count()} CPUs")
    results = {}
    for mode in args.modes.split(","):
        r = run_mode(mode, messages, args.concurrency)
        results[mode] = r
        print(f"{mode:12} {r['msgs_per_s']:8.1f} msg/s  {r['mb_per_s']:6.2f} MB/s  "
              f"({r['seconds']:.1f} s end-to-end, accepted in {r['accept_seconds']:.1f} s, "
              f"CPU-s/1000 msgs {r['cpu_s_per_1000']:.1f}, held {r['held']})", flush=True)
    if {"passthrough", "filtering"} <= results.keys():
        ratio = results["filtering"]["msgs_per_s"] / results["passthrough"]["msgs_per_s"]
        print(f"ratio filtering/passthrough: {ratio:.2f} (goal >= 0.50)")
    if {"filtering", "antispam"} <= results.keys():
        ratio = results["antispam"]["msgs_per_s"] / results["filtering"]["msgs_per_s"]
        print(f"ratio antispam/filtering: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
