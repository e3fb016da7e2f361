"""The Status page: Table 7-1 from the core's snapshot, core state, traffic chart, Refresh."""

from __future__ import annotations

import re

import pytest

from console.status.chart import nice_ceiling
from console.status.service import format_duration
from shared import db
from shared.events import Action, EventWriter
from shared.status import new_snapshot, write_snapshot

TABLE_7_1 = [
    "Server and port", "Version", "Product license", "Content license",
    "Premium AntiSpam license", "Last started", "Running for", "Virus scanning",
    "Central Quarantine forwarding", "Data received (MB)", "Message delivery mode",
    "Incoming messages", "Virus definitions", "Spam definitions", "SSL certificate installed",
    "Viruses repaired, deleted and logged", "Spam messages detected",
    "Auto-generated whitelist entries", "Policy violations",
    "Accepted", "Rejected", "Delivered", "Forwarded", "Dropped", "Held", "Quarantined",
    "Mass mailers deleted", "Repaired", "Deleted", "Logged", "Top-level attachments stripped",
    "Encryptions deleted", "Encryptions logged", "Fast queue", "Slow queue", "Hold queue",
    "Custom blacklist", "Real-time blacklists", "Heuristic engine and spam rules",
]


def _snapshot(home, clock, age=0.0, **counters):
    snap = new_snapshot(version="0.1.0", hostname="gw.example.com", smtp_port=25,
                        started_at=clock.now() - 3 * 86400 - 2 * 3600 - 5 * 60,
                        queues={"fast": 2, "slow": 7, "hold": 1}, auto_whitelist_entries=42)
    snap["counters"].update(counters)
    conn = db.connect(home.db)
    try:
        write_snapshot(conn, snap, now=clock.now() - age)
    finally:
        conn.close()


def _row(html: str, label: str) -> str:
    match = re.search(rf"<th scope=\"row\">{re.escape(label)}</th><td class=\"num\">([^<]*)</td>",
                      html)
    assert match, label
    return match.group(1)


def test_every_table_7_1_item_is_shown(admin, home, clock):
    _snapshot(home, clock, accepted=23, delivered=45, bytes_received=3 * 2**20,
              infections_repaired=4, infections_deleted=24, infections_logged=2,
              spam_heuristic=5, spam_rbl=1, spam_messages=5, rbl_refused=12)
    html = admin.get("/status/").get_data(as_text=True)
    for label in TABLE_7_1:
        _row(html, label)
    # not in the guide's table: a zone answering error codes protects nothing
    assert _row(html, "Real-time blacklist queries refused") == "12"
    assert _row(html, "Accepted") == "23" and _row(html, "Delivered") == "45"
    assert _row(html, "Server and port") == "gw.example.com:25"
    assert _row(html, "Running for") == "3 days, 2 hours, 5 minutes"
    assert _row(html, "Data received (MB)") == "3.0"
    assert _row(html, "Viruses repaired, deleted and logged") == "30"
    # messages, not detections: one message both engines caught counts once
    assert _row(html, "Spam messages detected") == "5"
    assert _row(html, "Slow queue") == "7"
    assert _row(html, "Auto-generated whitelist entries") == "42"
    assert "not built yet" in _row(html, "Product license")
    assert "The core is running" in html


def test_premium_shows_spam_suspected_and_reputation_instead_of_heuristic(admin, home, clock):
    admin.set(premium__enabled=True)
    _snapshot(home, clock, spam=3, suspected_spam=2, reputation_spam=1)
    html = admin.get("/status/").get_data(as_text=True)
    assert _row(html, "Suspected spam") == "2"
    assert "Heuristic engine" not in html


def test_core_never_started_is_said_plainly(admin):
    html = admin.get("/status/").get_data(as_text=True)
    assert "The core has not reported any status yet" in html


def test_stale_snapshot_says_core_is_not_running(admin, home, clock):
    _snapshot(home, clock, age=60, accepted=5)
    html = admin.get("/status/").get_data(as_text=True)
    assert "The core is not running" in html
    assert _row(html, "Running for") == "—"


def test_refresh_button_reloads_the_page(admin):
    html = admin.get("/status/").get_data(as_text=True)
    assert 'id="refresh"' in html and 'action="/status/"' in html


def test_report_only_reads_status(reporter, home, clock):
    _snapshot(home, clock, accepted=9)
    assert _row(reporter.get("/status/").get_data(as_text=True), "Accepted") == "9"


def test_traffic_chart_counts_events_per_hour(admin, home, clock):
    writer = EventWriter(home.db, process="core", clock=clock)
    now = clock.now()
    clock.value = now - 2 * 3600
    for _ in range(3):
        writer.record(Action.ACCEPTED, queue_id="q")
    writer.record(Action.DELIVERED, queue_id="q")
    clock.value = now - 30 * 3600  # older than 24 hours: not counted
    writer.record(Action.DROPPED, queue_id="old")
    clock.value = now
    writer.record(Action.REJECTED, client_ip="192.0.2.1")
    writer.record(Action.LOGON)  # not traffic
    writer.close()
    html = admin.get("/status/").get_data(as_text=True)
    svg = html.split("<svg", 1)[1].split("</svg>", 1)[0]
    for text in ("Accepted: 3", "Delivered: 1", "Dropped: 0", "Rejected: 1"):
        assert text in svg
    assert svg.count("<rect") == 4 + 3  # legend swatches + one bar per non-empty series/hour
    assert "messages per hour" in svg and "hour of day (UTC)" in svg
    table = html.split('class="traffic-table"', 1)[1]
    rows = re.findall(r'<td class="num">(\d+)</td>', table)
    assert sum(map(int, rows)) == 5


def test_chart_hours_follow_timezone_setting(admin):
    admin.set(timezone="Asia/Kolkata")
    html = admin.get("/status/").get_data(as_text=True)
    assert "hour of day (Asia/Kolkata)" in html


@pytest.mark.parametrize("value,expected", [(0, 5), (3, 5), (5, 5), (7, 10), (11, 20),
                                            (45, 50), (51, 100), (999, 1000)])
def test_chart_axis_is_a_round_number(value, expected):
    assert nice_ceiling(value) == expected


def test_duration_wording():
    assert format_duration(59) == "0 hours, 0 minutes"
    assert format_duration(86400 + 3600 + 60) == "1 day, 1 hour, 1 minute"
