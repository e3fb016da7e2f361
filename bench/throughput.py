"""Pass-through throughput: smtp-source → SUT → smtp-sink, Mailmoat beside a private Postfix.

For each message size and concurrency, in the same run on the same machine:
- `direct`:   smtp-source → smtp-sink (the ceiling of the load generator and sink),
- `postfix`:  smtp-source → a private Postfix relay (../shared/tools/postfix-relay.sh) → sink,
- `mailmoat`: smtp-source → `mailmoat core` (pass-through pipeline) → sink.
Both relays fsync before their 250. Each relay first gets WARM_UP_MESSAGES (not counted),
as a relay in service is warm: Postfix has its daemons running, Mailmoat its pipeline worker
processes started and their modules imported. A run then counts from the first connection
until every message has left the relay's queue (end-to-end), and reports the accept phase
alone too. CPU-seconds per 1000 messages are read from /proc (the process tree of each
relay; for Mailmoat also by process: core, SMTP listeners, pipeline workers).

    python -m bench.throughput [--messages 2000] [--sizes 2048,102400] [--concurrency 10,50]

Prints one line per run and the ratios mailmoat/postfix; nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.core import free_port, wait_port  # noqa: E402  (shared with the tests)
POSTFIX_RELAY = REPO.parent / "shared" / "tools" / "postfix-relay.sh"
TICKS = os.sysconf("SC_CLK_TCK")


def _process_tree(root_pid: int) -> list[tuple[int, list[str]]]:
    """(pid, /proc/<pid>/stat fields after the name) of a process and its live descendants."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree, stack = [], [root_pid]
    while stack:
        pid = stack.pop()
        if pid in stats:
            tree.append((pid, stats[pid]))
        stack.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root_pid: int) -> float:
    """utime+stime of a process and its live descendants, plus what it reaped."""
    # fields[11..14] = utime stime cutime cstime (after pid and comm)
    return sum(sum(int(v) for v in fields[11:15]) for _, fields in _process_tree(root_pid)) \
        / TICKS


def cpu_by_role(root_pid: int) -> dict[str, float]:
    """utime+stime of the live processes of a Mailmoat core, by role: the core process,
    the SMTP listener processes and the pipeline's worker processes."""
    roles: dict[str, float] = {}
    for pid, fields in _process_tree(root_pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        role = ("core" if pid == root_pid else "listeners" if b"listener_main" in command
                else "workers" if b"multiprocessing" in command else "other")
        roles[role] = roles.get(role, 0.0) + sum(int(v) for v in fields[11:13]) / TICKS
    return roles


@dataclass
class Result:
    sut: str
    size: int
    concurrency: int
    messages: int
    accept_seconds: float
    total_seconds: float
    cpu_seconds: float | None
    cpu_roles: dict[str, float] | None = None   # Mailmoat: CPU-seconds by process role

    @property
    def rate(self) -> float:
        return self.messages / self.total_seconds

    def line(self) -> str:
        cpu = f"{1000 * self.cpu_seconds / self.messages:7.2f}" if self.cpu_seconds is not None \
            else "      -"
        line = (f"{self.sut:9} size={self.size:>7} conc={self.concurrency:>3} "
                f"n={self.messages:>5}  {self.rate:8.1f} msg/s end-to-end  "
                f"{self.messages / self.accept_seconds:8.1f} msg/s accepted  "
                f"CPU-s/1000 msgs {cpu}")
        if self.cpu_roles:
            line += "\n          CPU-ms per message by process: " + ", ".join(
                f"{role} {1000 * seconds / self.messages:.2f}"
                for role, seconds in sorted(self.cpu_roles.items()))
        return line


class SmtpSink:
    def __init__(self):
        self.port = free_port()
        self.process = subprocess.Popen(
            [shutil.which("smtp-sink") or "/usr/sbin/smtp-sink", "-u", "postfix",
             f"127.0.0.1:{self.port}", "512"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        self.process.terminate()
        self.process.wait()


def smtp_source(port: int, messages: int, size: int, concurrency: int) -> float:
    started = time.monotonic()
    subprocess.run([shutil.which("smtp-source") or "/usr/sbin/smtp-source",
                    "-s", str(concurrency), "-m", str(messages), "-l", str(size),
                    "-f", "bench@source.test", "-t", "user@local.test",
                    f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def queue_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def run_direct(size, concurrency, messages) -> Result:
    sink = SmtpSink()
    try:
        seconds = smtp_source(sink.port, messages, size, concurrency)
    finally:
        sink.stop()
    return Result("direct", size, concurrency, messages, seconds, seconds, None)


WARM_UP_MESSAGES = 50


def _warm_up(port: int, size: int, concurrency: int, drained) -> None:
    smtp_source(port, WARM_UP_MESSAGES, size, concurrency)
    while not drained():
        time.sleep(0.02)


def run_postfix(size, concurrency, messages) -> Result:
    sink = SmtpSink()
    work = Path(tempfile.mkdtemp(prefix="bench-postfix-"))
    work.chmod(0o755)  # Postfix daemons run as the postfix user and must reach data/
    port = free_port()
    process = subprocess.Popen(["sh", str(POSTFIX_RELAY), "start", str(port), str(sink.port),
                                str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spool = work / "spool"

    def drained() -> bool:
        return not any(queue_files(spool / q) for q in ("incoming", "active", "deferred",
                                                          "maildrop") if (spool / q).exists())
    try:
        wait_port(port)
        _warm_up(port, size, concurrency, drained)
        cpu_before = tree_cpu_seconds(process.pid)
        started = time.monotonic()
        accept = smtp_source(port, messages, size, concurrency)
        while not drained():
            time.sleep(0.02)
        total = time.monotonic() - started
        cpu = tree_cpu_seconds(process.pid) - cpu_before
    finally:
        subprocess.run(["sh", str(POSTFIX_RELAY), "stop", str(work)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        process.wait(30)
        sink.stop()
        shutil.rmtree(work, ignore_errors=True)
    return Result("postfix", size, concurrency, messages, accept, total, cpu)


LISTENER_PROCESSES = 0  # the product default: one per CPU core (--listeners overrides)


def run_mailmoat(size, concurrency, messages) -> Result:
    from tests.support.core import CoreProcess, make_home

    sink = SmtpSink()
    root = Path(tempfile.mkdtemp(prefix="bench-mailmoat-"))
    home = make_home(root, smtp__max_incoming=max(concurrency, 15), smtp__max_outgoing=30,
                     smtp__listener_processes=LISTENER_PROCESSES,
                     routing__local=[{"match": "local.test", "relay": "127.0.0.1",
                                      "port": sink.port}])
    core = CoreProcess(home).start()

    def drained() -> bool:
        return not (queue_files(home.queue("fast")) or queue_files(home.queue("slow")))
    try:
        _warm_up(core.smtp_port, size, concurrency, drained)
        cpu_before = tree_cpu_seconds(core.process.pid)
        roles_before = cpu_by_role(core.process.pid)
        started = time.monotonic()
        accept = smtp_source(core.smtp_port, messages, size, concurrency)
        while not drained():
            time.sleep(0.02)
        total = time.monotonic() - started
        cpu = tree_cpu_seconds(core.process.pid) - cpu_before
        roles = {role: seconds - roles_before.get(role, 0.0)
                 for role, seconds in cpu_by_role(core.process.pid).items()}
    finally:
        core.stop()
        sink.stop()
        shutil.rmtree(root, ignore_errors=True)
    return Result("mailmoat", size, concurrency, messages, accept, total, cpu, roles)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sizes", default="2048,102400")
    parser.add_argument("--concurrency", default="10,50")
    parser.add_argument("--only", default="direct,postfix,mailmoat")
    parser.add_argument("--listeners", type=int, default=0,
                        help="smtp.listener_processes for Mailmoat (0 = one per CPU core)")
    args = parser.parse_args(argv)
    global LISTENER_PROCESSES
    LISTENER_PROCESSES = args.listeners
    runners = {"direct": run_direct, "postfix": run_postfix, "mailmoat": run_mailmoat}
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            by_sut = {}
            for name in args.only.split(","):
                result = runners[name](size, concurrency, args.messages)
                print(result.line(), flush=True)
                by_sut[name] = result
                results.append(result)
            if "postfix" in by_sut and "mailmoat" in by_sut:
                ratio = by_sut["mailmoat"].rate / by_sut["postfix"].rate
                print(f"  ratio mailmoat/postfix at size={size} conc={concurrency}: "
                      f"{ratio:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
