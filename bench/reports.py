"""Reports at scale: 2 million events, the Status page, a 30-day summary, the first detail page,
and a full CSV export (issue 8).

    python -m bench.reports [--events 2000000] [--days 30] [--home DIR] [--runs 15]
                            [--skip-pages] [--skip-export]

1. Seeds a data home (a temporary one unless --home names one that already holds the events)
   through the real EventWriter — so the roll-up triggers of migration 0002 run for every
   event, as in production — with a realistic mix: per message a connection, accepted,
   1.5 deliveries, completed, a close, and a few per cent of blocking/virus/spam events.
2. Times the console's real pages through Flask's test client, logged on as admin:
   GET /status/, the 30-day summary report (figures + all charts), the first page of the
   30-day detail report (unfiltered, a common action, a rare action, and with a search).
   Prints median and p95 of --runs runs after one warm-up.
3. Streams the full 30-day detail CSV with `mailmoat report detail --format csv` in a child
   process: rows/s over the whole export and per quarter of the rows (equal = steady, no
   slowdown deeper into the range), the longest pause between writes, and the child's peak
   RSS. Then the console's Write to CSV stream in this process: rows/s and
   how much this process's RSS grew.
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared import db
from shared.clock import FakeClock
from shared.events import Action, EventWriter
from shared.home import initialise
from shared.paths import DataHome
from shared.settings_store import apply_changes

PASSWORD = "Bench-pass-1"
NOW = 1_800_000_000.0 + 1234.5          # 2027-01-15, not on a whole hour
DAY = 86_400
VIRUSES = ["EICAR-Test-File", "W32.Netsky.P@mm", "W97M.Melissa", "Trojan.Gen", "JS.Redlof"]
SUBJECTS = ["*hot stock*", "*viagra*", "cheap meds*", "*lottery winner*"]
FILES = ["invoice.exe", "setup.scr", "photo.pif", "update.bat", "readme.vbs", "doc.js"]


def rss_kb() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def seed(home: DataHome, events: int, days: int) -> float:
    """Write `events` events over the `days` days before NOW; returns events/s."""
    clock = FakeClock(NOW)
    writer = EventWriter(home.db, "core", clock)
    rnd = random.Random(8)
    start = NOW - days * DAY
    step = days * DAY / events                      # evenly spread over the days
    written = 0
    t = start
    began = time.monotonic()
    message = 0
    while written < events:
        message += 1
        qid, conn_id = f"Q{message:09d}", f"C{message:09d}"
        ip = f"192.0.2.{message % 250 + 1}"
        sender = f"user{message % 5000}@example.com"
        rcpts = [f"r{message % 7000}@example.net"] + (
            [f"s{message % 300}@example.org"] if message % 2 else [])
        subject = f"Order {message} confirmation"
        batch = [(Action.CONNECTION_FROM, {"connection_id": conn_id, "client_ip": ip,
                                           "result": "succeeded"}),
                 (Action.ACCEPTED, {"queue_id": qid, "connection_id": conn_id, "client_ip": ip,
                                    "sender": sender, "recipients": rcpts, "subject": subject,
                                    "size": rnd.randint(1_000, 200_000)})]
        roll = rnd.random()
        if roll < 0.03:
            batch.append((Action.FILE_DELETED, {"queue_id": qid, "sender": sender,
                                                "data": {"virus": rnd.choice(VIRUSES),
                                                         "file": rnd.choice(FILES)}}))
        elif roll < 0.05:
            batch.append((Action.SUBJECT_BLOCKED, {"queue_id": qid, "subject": subject,
                                                   "data": {"pattern": rnd.choice(SUBJECTS)}}))
            batch.append((Action.DROPPED, {"queue_id": qid, "rule": "subject.lines"}))
        elif roll < 0.07:
            batch.append((Action.ATTACHMENT_DELETED, {"queue_id": qid,
                                                      "data": {"file": rnd.choice(FILES)}}))
        elif roll < 0.09:
            batch.append((Action.HEURISTIC_SPAM, {"queue_id": qid, "info": "score 93"}))
        elif roll < 0.092:
            batch.append((Action.REJECTED, {"client_ip": ip, "info": "relay denied"}))
        for r in rcpts:
            batch.append((Action.DELIVERED, {"queue_id": qid, "recipients": [r],
                                             "data": {"next_hop": "mx.example.net"}}))
        batch.append((Action.COMPLETED, {"queue_id": qid}))
        batch.append((Action.CONNECTION_CLOSED, {"connection_id": conn_id}))
        for action, fields in batch:
            clock.value = t
            writer.record(action, **fields)
            written += 1
            t += step
        if written % 50_000 < len(batch):       # the writer's queue is bounded: keep up with it
            writer.flush()
            print(f"\r  seeded {written:,} events", end="", file=sys.stderr, flush=True)
    writer.close()
    elapsed = time.monotonic() - began
    print(file=sys.stderr)
    assert writer.lost == 0, "the bench outran the writer's queue"
    return written / elapsed


def timed(call, runs: int) -> tuple[float, float]:
    call()                                          # warm-up (caches, first connection)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * .95))]


def pages(home: DataHome, days: int, runs: int) -> list[tuple[str, float, float]]:
    from console.app import create_app

    app = create_app(home, clock=FakeClock(NOW), config={"TESTING": True})
    client = app.test_client()
    page = client.get("/logon").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/logon", data={"username": "admin", "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302, "log on failed"
    import datetime as dt
    to = dt.datetime.fromtimestamp(NOW, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M")
    fro = dt.datetime.fromtimestamp(NOW - days * DAY, dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M")
    span = f"generated=1&start={fro}&end={to}"
    checks = [
        ("Status page", "/status/"),
        (f"summary report, {days} days (figures + charts)", f"/reporting/summary?{span}"),
        (f"detail report, {days} days, first page, all actions", f"/reporting/detail?{span}"),
        (f"detail report, {days} days, first page, action=delivered",
         f"/reporting/detail?{span}&actions=delivered"),
        (f"detail report, {days} days, first page, action=rejected (rare)",
         f"/reporting/detail?{span}&actions=rejected"),
        (f"detail report, {days} days, first page, search 'netsky'",
         f"/reporting/detail?{span}&search=netsky"),
    ]
    out = []
    for label, url in checks:
        def call(url=url):
            r = client.get(url)
            assert r.status_code == 200, (url, r.status_code)
        median, p95 = timed(call, runs)
        out.append((label, median, p95))
    app.extensions["mailmoat"].close()
    return out


def cli_export(home: DataHome, days: int) -> dict:
    import datetime as dt
    to = dt.datetime.fromtimestamp(NOW, dt.timezone.utc).isoformat()
    fro = dt.datetime.fromtimestamp(NOW - days * DAY, dt.timezone.utc).isoformat()
    command = [sys.executable, "-m", "shared.cli", "report", "detail", "--from", fro, "--to", to,
               "--format", "csv", "--home", str(home.root)]
    t0 = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, bufsize=0)
    rows = -1
    marks: list[tuple[float, int]] = []            # (time, rows so far) at every read
    longest_gap, last = 0.0, None
    while True:
        chunk = child.stdout.read(1 << 16)         # unbuffered: whatever the pipe holds
        if not chunk:
            break
        now = time.monotonic()
        if last is not None:
            longest_gap = max(longest_gap, now - last)
        last = now
        rows += chunk.count(b"\n")
        marks.append((now, rows))
    child.wait()
    elapsed = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

    def rate(lo: float, hi: float) -> float:
        """rows/s between the lo and hi fractions of the rows (steady = equal across)."""
        a = next(m for m in marks if m[1] >= rows * lo)
        b = next(m for m in marks if m[1] >= rows * hi)
        return (b[1] - a[1]) / max(b[0] - a[0], 1e-9)

    quarters = [rate(q / 4, (q + 1) / 4 - 1e-9) for q in range(4)]
    return {"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed,
            "quarters": quarters, "longest_gap": longest_gap, "peak_rss_mb": peak / 1024}


def console_export(home: DataHome, days: int) -> dict:
    from console.app import create_app
    app = create_app(home, clock=FakeClock(NOW), config={"TESTING": True})
    client = app.test_client()
    page = client.get("/logon").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    client.post("/logon", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    import datetime as dt
    to = dt.datetime.fromtimestamp(NOW, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M")
    fro = dt.datetime.fromtimestamp(NOW - days * DAY, dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M")
    page = client.get("/reporting/detail").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    before = rss_kb()
    peak = before
    t0 = time.monotonic()
    response = client.post("/reporting/detail", data={"csrf_token": token, "start": fro,
                                                      "end": to, "write_csv": "1"},
                           buffered=False)
    rows = -1
    for chunk in response.response:
        rows += chunk.count(b"\n")
        peak = max(peak, rss_kb())
    response.close()
    elapsed = time.monotonic() - t0
    app.extensions["mailmoat"].close()
    return {"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed,
            "rss_growth_mb": (peak - before) / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--home", help="reuse (or create) this data home")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--skip-pages", action="store_true")
    args = parser.parse_args()

    root = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="mailmoat-bench-"))
    home = DataHome(root)
    initialise(home, PASSWORD)
    conn = db.connect(home.db)
    from werkzeug.security import generate_password_hash
    apply_changes(conn, {"admin.password": generate_password_hash(PASSWORD,
                                                                  method="pbkdf2:sha256:1000")})
    have = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    conn.close()
    print(f"data home {root}: {have:,} events")
    if have < args.events:
        rate = seed(home, args.events - have, args.days)
        print(f"seeded {args.events - have:,} events through EventWriter (roll-up triggers "
              f"on): {rate:,.0f} events/s")
    size = sum(p.stat().st_size for p in root.glob("mailmoat.db*"))
    conn = db.connect(home.db)
    hourly = conn.execute("SELECT COUNT(*) FROM event_hourly").fetchone()[0]
    total = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    conn.close()
    print(f"{total:,} events, {hourly:,} roll-up rows, database {size / 2**20:,.0f} MiB")
    if not args.skip_pages:
        print(f"\nlatency over {args.runs} runs (ms), target < 200:")
        for label, median, p95 in pages(home, args.days, args.runs):
            print(f"  {label:<62} median {median:7.1f}  p95 {p95:7.1f}")
    if not args.skip_export:
        cli = cli_export(home, args.days)
        print(f"\nCSV export, `mailmoat report detail --format csv` ({args.days} days): "
              f"{cli['rows']:,} rows in {cli['seconds']:.1f} s = {cli['rows_per_s']:,.0f} rows/s; "
              "per quarter of the rows "
              + " / ".join(f"{q:,.0f}" for q in cli["quarters"]) + " rows/s; longest pause "
              f"between writes {cli['longest_gap'] * 1000:.0f} ms; peak RSS "
              f"{cli['peak_rss_mb']:.0f} MiB")
        web = console_export(home, args.days)
        print(f"CSV export, console Write to CSV (also saved in logs/): {web['rows']:,} rows in "
              f"{web['seconds']:.1f} s = {web['rows_per_s']:,.0f} rows/s; RSS growth "
              f"{web['rss_growth_mb']:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
