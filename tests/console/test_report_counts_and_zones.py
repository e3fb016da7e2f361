"""The Reporting and Status pages' per-hour numbers in half-hour time zones, what "Rejected"
counts there, and the byte-order mark of Write to CSV (reports findings 3, 4 and 5).
Events are real rows, written through the event writer into the console's SQLite database.

Before: a UTC hour (09:30–10:30 in Asia/Kolkata) was added to the local bucket labelled
09:00, or 10:00, depending on where the range started; the Status page labelled the UTC hour
09:30–10:30 "09:00"; refused recipients of messages that went on counted as rejected
messages; the console's CSV had no byte-order mark, so Excel showed non-ASCII as mojibake.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import shutil
import subprocess
import sys
import zoneinfo

import pytest

from shared.clock import FakeClock
from shared.events import RECIPIENT_REFUSED, Action, EventWriter

T0 = 1_800_000_000.0            # the console clock's now: 2027-01-15 08:00 UTC, 13:30 in Kolkata
_SCRIPT = shutil.which("mailmoat", path=os.path.dirname(sys.executable))
MAILMOAT = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "shared.cli"]
BOM = b"\xef\xbb\xbf"


def _seed(home, events) -> None:
    """`events`: (time, action, fields) written through the core's event writer."""
    clock = FakeClock(T0)
    writer = EventWriter(home.db, "core", clock)
    for time, action, fields in events:
        clock.value = time
        writer.record(action, **fields)
    writer.close()


def _at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def _traffic_table(html: str) -> dict[str, dict[str, int]]:
    """The "Show the numbers" table: row label → {column: count}."""
    table = html.split('class="traffic-table"', 1)[1].split("</table>", 1)[0]
    columns = [c.lower() for c in re.findall(r'<th scope="col">([^<]*)</th>', table)[1:]]
    rows = {}
    for label, cells in re.findall(r'<tr><th scope="row">([^<]*)</th>(.*?)</tr>', table, re.S):
        rows[label] = dict(zip(columns, map(int, re.findall(r'<td class="num">(\d+)</td>',
                                                             cells))))
    return rows


def _summary_page(admin, start: str, end: str) -> str:
    response = admin.get(f"/reporting/summary?generated=1&start={start}&end={end}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _accepted_by_row(html: str) -> dict[str, int]:
    return {label: row["accepted"] for label, row in _traffic_table(html).items()
            if row["accepted"]}


# --- finding 4: buckets are local hours, whatever the zone's offset ---------------------------

def test_a_half_hour_zone_puts_events_in_their_local_hour_whatever_the_range_start(admin,
                                                                                    clock):
    assert clock.now() == T0
    admin.set(timezone="Asia/Kolkata")
    accepted = {"queue_id": "q", "sender": "x@local.test", "subject": "half hour"}
    _seed(admin.home, [(_at("2027-01-15T03:50:00+00:00"), Action.ACCEPTED, accepted)] * 3   # 09:20
          + [(_at("2027-01-15T04:40:00+00:00"), Action.ACCEPTED, accepted)] * 5             # 10:10
          + [(_at("2027-01-15T05:20:00+00:00"), Action.ACCEPTED, accepted)] * 2             # 10:50
          + [(_at("2027-01-15T05:35:00+00:00"), Action.ACCEPTED, accepted)])                # 11:05
    page = _summary_page(admin, "2027-01-15T09:00", "2027-01-15T11:00")
    assert _accepted_by_row(page) == {"2027-01-15 09:00": 3, "2027-01-15 10:00": 7}
    assert "Accepted: 10" in page                                     # the total stays exact
    page = _summary_page(admin, "2027-01-15T10:00", "2027-01-15T11:00")
    assert _accepted_by_row(page) == {"2027-01-15 10:00": 7}
    page = _summary_page(admin, "2027-01-15T09:30", "2027-01-15T11:30")
    assert _accepted_by_row(page) == {"2027-01-15 10:00": 7, "2027-01-15 11:00": 1}


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns",
                                  "Europe/Berlin"])
@pytest.mark.parametrize("days,width", [(2, 1), (10, 6)])
def test_every_bucket_holds_exactly_the_events_of_its_local_hours(admin, clock, zone, days,
                                                                  width):
    admin.set(timezone=zone)
    local_zone = zoneinfo.ZoneInfo(zone)
    end = dt.datetime.fromtimestamp(T0, local_zone).replace(minute=0)
    start = end - dt.timedelta(days=days)
    times = [start.timestamp() - 1800 + k * 1013.7
             for k in range(int((end.timestamp() - start.timestamp() + 3600) / 1013.7))]
    _seed(admin.home, [(t, Action.ACCEPTED, {"queue_id": f"q{k}"}) for k, t in enumerate(times)])
    expected: dict[str, int] = {}
    for t in times:
        if start.timestamp() <= t < end.timestamp():
            local = dt.datetime.fromtimestamp(t, local_zone)
            bucket = local.replace(hour=local.hour - local.hour % width, minute=0, second=0,
                                   microsecond=0)
            label = f"{bucket:%Y-%m-%d %H:%M}"
            expected[label] = expected.get(label, 0) + 1
    page = _summary_page(admin, f"{start:%Y-%m-%dT%H:%M}", f"{end:%Y-%m-%dT%H:%M}")
    assert _accepted_by_row(page) == expected
    assert f"Accepted: {sum(expected.values())}" in page


def test_status_traffic_hours_are_local_hours_in_a_half_hour_zone(admin, clock):
    assert clock.now() == T0                                          # 13:30 in Kolkata
    admin.set(timezone="Asia/Kolkata")
    _seed(admin.home, [(T0 - 20 * 60, Action.ACCEPTED, {"queue_id": "a"})] * 2     # 13:10
          + [(T0 - 50 * 60, Action.ACCEPTED, {"queue_id": "b"})] * 3               # 12:40
          + [(T0 - 70 * 60, Action.ACCEPTED, {"queue_id": "c"})] * 4               # 12:20
          + [(T0 - 24.5 * 3600, Action.ACCEPTED, {"queue_id": "d"})])               # too old
    html = admin.get("/status/").get_data(as_text=True)
    table = _traffic_table(html)
    assert list(table)[0] == "2027-01-14 14:00" and list(table)[-1] == "2027-01-15 13:00"
    assert {label: row["accepted"] for label, row in table.items() if row["accepted"]} == {
        "2027-01-15 12:00": 7, "2027-01-15 13:00": 2}
    svg = html.split('id="traffic-chart"', 1)[1].split("</svg>", 1)[0]
    assert "13:00–14:00 Accepted: 2" in svg and "12:00–13:00 Accepted: 7" in svg


# --- finding 3: Rejected counts messages ---------------------------------------------------

def test_refused_recipients_of_messages_that_went_on_are_not_counted_as_rejected(admin, clock):
    refused = {"sender": "a@client.test", "rule": "relay.allowed", "info": "relay denied",
               "result": RECIPIENT_REFUSED, "data": {"reply": "550"}}
    _seed(admin.home,
          [(T0 - 600, Action.REJECTED, {**refused, "recipients": [f"r{k}@third.test"]})
           for k in range(3)]
          + [(T0 - 600, Action.REJECTED, {"client_ip": "192.0.2.9", "result": "550",
                                          "rule": "relay.allowed"})] * 2
          + [(T0 - 600, Action.ACCEPTED, {"queue_id": "q1"})])
    page = _summary_page(admin, "2027-01-14T08:00", "2027-01-15T08:00")
    assert re.search(r'<th scope="row">Messages Rejected</th><td class="num">2</td>', page)
    assert "Rejected: 2" in page.split('id="disposition-chart"', 1)[1].split("</svg>", 1)[0]
    assert sum(row["rejected"] for row in _traffic_table(page).values()) == 2
    status = admin.get("/status/").get_data(as_text=True)
    assert "Rejected: 2" in status.split('id="traffic-chart"', 1)[1].split("</svg>", 1)[0]
    assert sum(row["rejected"] for row in _traffic_table(status).values()) == 2
    detail = admin.post("/reporting/detail", {"start": "2027-01-14T08:00",
                                              "end": "2027-01-15T08:00",
                                              "actions": ["rejected"], "write_csv": "1"})
    rows = list(csv.DictReader(io.StringIO(detail.get_data().decode("utf-8-sig"), newline="")))
    assert sorted(row["result"] for row in rows) == ["550", "550", *[RECIPIENT_REFUSED] * 3]


# --- finding 5: the console's CSV starts with a byte-order mark; the CLI's does not --------

def test_write_to_csv_has_a_byte_order_mark_the_cli_csv_has_none(admin, clock):
    subjects = ["Grüße – 日本語のテスト", "=cmd|' /C calc'!A0", "Café €5"]
    _seed(admin.home, [(T0 - 3600 + k, Action.ACCEPTED,
                        {"queue_id": f"q{k}", "sender": "-x@local.test", "subject": subject})
                       for k, subject in enumerate(subjects)])
    window = {"start": "2027-01-14T08:00", "end": "2027-01-15T08:00"}
    response = admin.post("/reporting/detail", {**window, "actions": ["accepted"],
                                                "write_csv": "1"})
    body = response.get_data()
    assert body.startswith(BOM + b"time,category,action,result,")     # before the header cell
    name = re.search(r'filename="([^"]+)"', response.headers["Content-Disposition"]).group(1)
    assert (admin.home.logs / name).read_bytes() == body              # the saved copy too
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert rows[0][0] == "time"
    assert [(row[7], row[9]) for row in rows[1:]] == [
        ("'-x@local.test", "Grüße – 日本語のテスト"), ("'-x@local.test", "'=cmd|' /C calc'!A0"),
        ("'-x@local.test", "Café €5")]
    summary = admin.post("/reporting/summary", {**window, "write_csv": "1"}).get_data()
    assert summary.startswith(BOM + b"section,item,count\r\nmessage,Messages Accepted,3\r\n")

    environ = {k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"}
    cli = subprocess.run([*MAILMOAT, "report", "detail", "--from", window["start"], "--to",
                          window["end"], "--action", "accepted", "--format", "csv",
                          "--home", str(admin.home.root)],
                         capture_output=True, env=environ, timeout=60, check=True)
    assert cli.stdout == body[len(BOM):]            # scripts read it: the same bytes, no mark
