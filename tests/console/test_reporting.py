"""Reporting page (SPEC §7, guide ch. 7): both administrator roles, the summary and detail
tabs, pagination, Write to CSV (download + logs/ copy), charts, and logging.local off.
Events are seeded through the event writer."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import re
import time

import pytest

from console.reporting.service import MAX_SAVED_CSV, saved_csv_files
from shared.disk import LOW_DISK_FRACTION
from shared import db
from shared.clock import FakeClock
from shared.events import Action, EventWriter
from shared.settings_store import apply_changes

URLS = ["/reporting/", "/reporting/summary", "/reporting/detail",
        "/reporting/summary?generated=1", "/reporting/detail?generated=1"]


@pytest.fixture
def seeded(console, clock):
    """A day of traffic ending at the console clock's now (2027-01-15 08:00 UTC)."""
    writer_clock = FakeClock(clock.now())
    writer = EventWriter(console.home.db, "core", writer_clock)
    for i in range(150):
        writer_clock.value = clock.now() - 3600 * 5 + i * 60
        writer.record(Action.ACCEPTED, queue_id=f"Q{i:03d}", size=2048, sender="a@example.com",
                      recipients=["b@example.net"], subject=f"Message {i}",
                      client_ip="192.0.2.7")
        writer.record(Action.DELIVERED, queue_id=f"Q{i:03d}", recipients=["b@example.net"])
    writer_clock.value = clock.now() - 600
    writer.record(Action.FILE_DELETED, queue_id="Q007", data={"virus": "EICAR-Test-File"},
                  subject="=cmd|' /C calc'!A0")
    writer.record(Action.SUBJECT_BLOCKED, queue_id="Q008", subject="HOT stock tips",
                  data={"pattern": "*hot stock*"})
    writer.record(Action.ATTACHMENT_DELETED, queue_id="Q009", data={"file": "invoice.exe"})
    writer.record(Action.DELIVERED, queue_id="G1", recipients=["a@example.com"],
                  data={"generated": True})
    writer.close()
    return console


def window(console) -> dict:
    return {"start": "2027-01-14T08:00", "end": "2027-01-15T08:00"}


@pytest.mark.parametrize("url", URLS)
def test_anonymous_is_sent_to_logon(console, url):
    response = console.get(url)
    assert response.status_code == 302 and "/logon" in response.headers["Location"]


@pytest.mark.parametrize("url", URLS)
def test_both_roles_have_full_access(admin, reporter, url):
    for who in (admin, reporter):
        response = who.get(url)
        assert response.status_code == 200, url
        assert b"Traceback" not in response.data


def test_report_only_administrator_can_write_csv(reporter, seeded):
    response = reporter.post("/reporting/detail", {**window(reporter), "write_csv": "1"})
    assert response.status_code == 200 and response.mimetype == "text/csv"


def test_pickers_default_to_the_last_24_hours_in_the_timezone(admin):
    """Up to the next whole minute: the range ends just before To (now is 08:00:00 UTC)."""
    admin.set(timezone="Asia/Tokyo")
    page = admin.get("/reporting/summary").get_data(as_text=True)
    assert 'value="2027-01-14T17:01"' in page and 'value="2027-01-15T17:01"' in page
    assert 'type="datetime-local"' in page


def picker_values(page: str) -> dict:
    return {name: re.search(rf'id="{name}"[^>]*value="([^"]*)"|value="([^"]*)"[^>]*id="{name}"',
                            page).group(1) for name in ("start", "end")}


def save_content_page(admin, **fields):
    """Save Filtering Policy › Content through its page (console.settings_service writes
    the object_modified event)."""
    from tests.console.test_configuration import _form_fields
    data = _form_fields(admin, "/filtering/content")
    data.update(fields)
    response = admin.post("/filtering/content", data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    admin.events()                                    # flushes the console's event writer


def generated(admin, tab, values):
    response = admin.post(f"/reporting/{tab}", {**values, "generate": "1"})
    assert response.status_code == 302
    return admin.get(response.headers["Location"]).get_data(as_text=True)


def test_the_default_range_includes_a_change_saved_this_minute(admin, clock):
    """An administrator who has just saved a change and opens the report sees it (the To the
    pickers showed was the current minute, which the range excludes)."""
    clock.advance(25)                                 # 08:00:25
    save_content_page(admin, subject__lines="*lottery*")
    clock.advance(5)
    values = picker_values(admin.get("/reporting/detail").get_data(as_text=True))
    page = generated(admin, "detail", {**values, "actions": ["object_modified"]})
    assert "Events 1–1 of 1" in page and "subject.lines" in page
    assert values == {"start": "2027-01-14T08:01", "end": "2027-01-15T08:01"}
    assert picker_values(admin.get("/reporting/summary").get_data(as_text=True)) == values
    clock.value = 1_800_000_000.0 + 59.5              # the last moment of that minute
    save_content_page(admin, subject__lines="*lottery*\r\n*prize*")
    page = generated(admin, "detail", {**picker_values(admin.get("/reporting/detail")
                                                       .get_data(as_text=True)),
                                       "actions": ["object_modified"]})
    assert "Events 1–2 of 2" in page


def detail_cells(page: str) -> list[dict]:
    """The detail table's rows as {column heading: cell HTML}."""
    table = page.split('id="detail-table"', 1)[1].split("</table>", 1)[0]
    heads = re.findall(r'<th scope="col">([^<]*)</th>', table)
    body = table.split("<tbody>", 1)[1]
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        rows.append(dict(zip(heads, cells)))
    return rows


PAYLOAD = '"><script>alert(1)</script>'


def test_an_object_modified_row_shows_who_changed_what_escaped(admin, clock):
    """Guide Table 7-5: what was modified, which user, from which client, which page."""
    save_content_page(admin, subject__lines=f"*{PAYLOAD}*\r\nfür*")
    page = admin.get("/reporting/detail?generated=1&start=2027-01-15T07:00"
                     "&end=2027-01-15T08:01&actions=object_modified").get_data(as_text=True)
    assert "<script>alert" not in page                # escaped, never markup
    (row,) = detail_cells(page)
    assert row["User"] == "admin" and row["Client IP"] == "127.0.0.1"
    assert row["Info"] == "Filtering Policy › Content" and row["Rule"] == "subject.lines"
    assert row["Details"] == ('<ul><li>subject.lines: [] → [&#34;*\\&#34;&gt;&lt;script&gt;'
                              'alert(1)&lt;/script&gt;*&#34;, &#34;für*&#34;]</li></ul>')
    search = admin.get("/reporting/detail?generated=1&start=2027-01-15T07:00"
                       "&end=2027-01-15T08:01&search=%22%3E%3Cscript%3E").get_data(as_text=True)
    assert "Events 1–1" in search and len(detail_cells(search)) == 1
    search = admin.get("/reporting/detail?generated=1&start=2027-01-15T07:00"
                       "&end=2027-01-15T08:01&search=F%C3%9CR*").get_data(as_text=True)
    assert "Events 1–1" in search


def test_system_rows_show_the_user(admin, console):
    """Logon and logoff events name their user; a failed logon the account that was tried."""
    admin.logoff()
    console.logon("admin", "wrong")
    admin.logon()
    admin.events()
    page = admin.get("/reporting/detail?generated=1&start=2027-01-15T07:00&end=2027-01-15T08:01"
                     "&actions=logon&actions=logoff").get_data(as_text=True)
    rows = detail_cells(page)
    assert [(r["Action"], r["Result"], r["User"]) for r in rows] == [
        ("Logon", "succeeded", "admin"), ("Logoff", "succeeded", "admin"),
        ("Logon", "failed", "admin"), ("Logon", "succeeded", "admin")]
    assert "reason=logoff" in rows[1]["Details"]


def test_an_auto_whitelist_delete_names_the_deleted_domains(admin, home):
    """The move/delete is a command for the core: no changed setting, so no Rule; the details
    are the only place that says which domains."""
    conn = __import__("shared.db", fromlist=["connect"]).connect(home.db)
    try:
        conn.executemany("INSERT INTO auto_whitelist (domain, count, first_seen, last_seen) "
                         "VALUES (?, ?, ?, ?)", [("zeta.org", 4, 1.0, 2.0),
                                                 ("alpha.net", 2, 1.0, 2.0)])
    finally:
        conn.close()
    response = admin.post("/antispam/auto-whitelist/manage",
                          {"domains": ["zeta.org", "alpha.net"], "confirm": "y"})
    assert response.status_code == 302
    admin.events()
    page = admin.get("/reporting/detail?generated=1&start=2027-01-15T07:00&end=2027-01-15T08:01"
                     "&actions=object_modified").get_data(as_text=True)
    (row,) = detail_cells(page)
    assert row["User"] == "admin" and row["Rule"] == ""
    assert "args.domains=[&#34;alpha.net&#34;, &#34;zeta.org&#34;]" in row["Details"]
    assert "command=whitelist.auto.delete" in row["Details"]
    csv_rows = list(csv.DictReader(io.StringIO(admin.post("/reporting/detail", {
        "start": "2027-01-15T07:00", "end": "2027-01-15T08:01", "actions": ["object_modified"],
        "write_csv": "1"}).get_data(as_text=True), newline="")))
    assert "user=admin" in csv_rows[0]["info"]
    assert 'args.domains=["alpha.net", "zeta.org"]' in csv_rows[0]["info"]


def test_a_row_without_info_shows_its_data_once_under_details(admin, seeded):
    """CSV's info falls back to the data (as it always has); the page shows it under Details
    only, not twice."""
    page = admin.get("/reporting/detail?generated=1&start=2027-01-14T08:00&end=2027-01-15T08:00"
                     "&actions=file_deleted").get_data(as_text=True)
    (row,) = detail_cells(page)
    assert row["Info"] == "" and row["User"] == ""
    assert row["Details"] == "<ul><li>virus=EICAR-Test-File</li></ul>"


def test_long_details_are_shortened_on_the_page_and_in_full_in_the_csv(admin):
    lines = [f"*offer number {i:04d}*" for i in range(400)]
    save_content_page(admin, subject__lines="\r\n".join(lines))
    save_content_page(admin, subject__lines="\r\n".join(lines[1:] + ["*new one*"]))
    query = {"start": "2027-01-15T07:00", "end": "2027-01-15T08:01",
             "actions": ["object_modified"]}
    page = generated(admin, "detail", query)
    first, second = detail_cells(page)
    assert "shortened: Write to CSV has it in full" in first["Details"]
    assert len(first["Details"]) < 600
    assert ("subject.lines: added [&#34;*new one*&#34;], removed [&#34;*offer number 0000*&#34;]"
            " (400 → 400 entries)") in second["Details"]
    response = admin.post("/reporting/detail", {**query, "write_csv": "1"})
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))
    # in full: the 400 lines added (a list too long to show twice is shown as what changed)
    assert rows[0]["info"].endswith(f"subject.lines: added {json.dumps(lines)}, removed [] "
                                    "(0 → 400 entries)")


def test_generate_summary_redirects_and_shows_every_section_and_the_charts(admin, seeded):
    response = admin.post("/reporting/summary", {**window(admin), "generate": "1"})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/reporting/summary?") and "generated=1" in location
    page = admin.get(location).get_data(as_text=True)
    for section in ("message", "infection", "viruses", "subjects_blocked",
                    "attachments_deleted"):
        assert f'id="section-{section}"' in page
    assert 'id="section-premium"' not in page      # premium.enabled is off
    assert re.search(r"Messages Accepted</th><td class=\"num\">150<", page)
    assert re.search(r"Messages Delivered</th><td class=\"num\">151<", page)
    assert re.search(r"Data Accepted \(KB\)</th><td class=\"num\">300<", page)
    assert 'id="disposition-chart"' in page and "Accepted: 150" in page
    assert 'id="top-viruses"' in page and "EICAR-Test-File: 1" in page
    assert 'id="top-subjects"' in page and 'id="top-attachments"' in page
    assert "<script" not in page and "style=" not in page   # the CSP forbids both


def test_premium_section_appears_when_premium_is_enabled(admin, seeded):
    admin.set(premium__enabled=True)
    page = admin.get("/reporting/summary?generated=1&start=2027-01-14T08:00"
                     "&end=2027-01-15T08:00").get_data(as_text=True)
    assert 'id="section-premium"' in page and "Reputation Spam Detected" in page


def test_detail_report_filters_pages_and_counts(admin, seeded):
    response = admin.post("/reporting/detail", {**window(admin), "actions": ["accepted"],
                                                "generate": "1"})
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "Events 1–100 of 150" in page
    assert page.count('<td title="accepted">Accepted</td>') == 100
    assert '<td title="delivered">' not in page
    next_url = re.search(r'href="([^"]+)" id="next-page"', page).group(1).replace("&amp;", "&")
    page = admin.get(next_url).get_data(as_text=True)
    assert "Events 101–150 of 150" in page and 'id="next-page"' not in page
    assert "Q149" in page and "Q099" not in page
    previous = re.search(r'href="([^"]+)" id="previous-page"', page).group(1).replace("&amp;", "&")
    page = admin.get(previous).get_data(as_text=True)
    assert "Events 1–100 of 150" in page and "Q000" in page
    assert 'checked' in page   # the filter stays chosen


def test_a_page_number_in_other_digits_is_the_first_page(admin, seeded):
    response = admin.get("/reporting/detail?generated=1&start=2027-01-14T08:00"
                         "&end=2027-01-15T08:00&n=%C2%B2")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "invalid literal" not in page
    assert "Events 1–" in page


def test_detail_search_is_case_insensitive(admin, seeded):
    page = admin.get("/reporting/detail?generated=1&start=2027-01-14T08:00&end=2027-01-15T08:00"
                     "&search=hot+STOCK").get_data(as_text=True)
    assert "Events 1–1" in page and "HOT stock tips" in page


def test_detail_checkboxes_are_grouped_as_the_guide_tables(admin):
    page = admin.get("/reporting/detail").get_data(as_text=True)
    for group in ("system", "smtp", "premium", "message", "blocking"):
        assert f'id="group-{group}"' in page
    for action in Action:
        assert f'value="{action.value}"' in page


def test_csv_files_of_the_same_minute_are_all_kept(admin, seeded, clock):
    """The saved names have minutes only: a summary written in the minute of a detail CSV
    used to replace it in logs/ (soak test)."""
    bodies = [admin.post(f"/reporting/{kind}", {**window(admin), "write_csv": "1"}).get_data()
              for kind in ("detail", "summary", "detail")]
    saved = sorted(p.name for p in admin.home.logs.glob("MAILMOAT*"))
    assert saved == ["MAILMOAT202701150800-2.csv", "MAILMOAT202701150800-3.csv",
                     "MAILMOAT202701150800.csv"]
    assert [(admin.home.logs / name).read_bytes() for name in (
        "MAILMOAT202701150800.csv", "MAILMOAT202701150800-2.csv",
        "MAILMOAT202701150800-3.csv")] == bodies


def test_write_to_csv_downloads_and_saves_the_same_file_in_logs(admin, seeded, clock):
    response = admin.post("/reporting/detail", {**window(admin), "search": "cmd",
                                                "write_csv": "1"})
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    name = re.fullmatch(r'attachment; filename="(MAILMOAT\d{12}\.csv)"', disposition).group(1)
    assert name == "MAILMOAT202701150800.csv"
    body = response.get_data().decode("utf-8-sig")      # the byte-order mark is for Excel
    saved = (admin.home.logs / name).read_bytes().decode("utf-8-sig")
    assert saved == body
    assert not list(admin.home.logs.glob("*.part"))
    rows = list(csv.reader(io.StringIO(body, newline="")))
    assert rows[0] == ["time", "category", "action", "result", "queue_id", "connection_id",
                       "client_ip", "sender", "recipients", "subject", "size", "rule", "info"]
    assert len(rows) == 2 and rows[1][2] == "file_deleted"
    assert rows[1][12] == "virus=EICAR-Test-File"
    assert rows[1][9] == "'=cmd|' /C calc'!A0" and rows[1][0] == "2027-01-15T07:50:00+00:00"


def test_summary_csv(admin, seeded):
    response = admin.post("/reporting/summary", {**window(admin), "write_csv": "1"})
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"), newline="")))
    assert rows[0] == ["section", "item", "count"]
    assert ["message", "Messages Accepted", "150"] in rows
    assert ["message", "Messages Delivered", "151"] in rows
    assert ["viruses", "EICAR-Test-File", "1"] in rows


def test_csv_needs_the_csrf_token(admin):
    response = admin.post("/reporting/detail", {**window(admin), "write_csv": "1"}, csrf=False)
    assert response.status_code == 400
    assert not list(admin.home.logs.glob("MAILMOAT*"))


def test_a_bad_range_says_what_is_wrong(admin):
    response = admin.post("/reporting/detail", {"start": "2027-01-15T10:00",
                                                "end": "2027-01-15T09:00", "write_csv": "1"})
    assert response.status_code == 400
    assert "must be before its end" in response.get_data(as_text=True)
    response = admin.get("/reporting/summary?generated=1&start=garbage")
    assert response.status_code == 400
    page = response.get_data(as_text=True)      # beside From (test_error_fields.py)
    assert re.search(r'<span class="error" id="start-error">[^<]*garbage', page)


def test_local_logging_off_says_reports_are_empty(admin):
    assert b"local-logging-off" not in admin.get("/reporting/").data
    admin.set(logging__local=False)
    page = admin.get("/reporting/detail").get_data(as_text=True)
    assert 'id="local-logging-off"' in page and "reports over that time are empty" in page


# --- saved CSV copies are bounded (console-security finding 5: a report-only user could fill
# the data home's disk with Write to CSV) ------------------------------------------------------

def _old_copies(logs, count: int, age_seconds: float, now: float) -> list:
    logs.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = logs / f"MAILMOAT20260101{n // 60:02d}{n % 60:02d}.csv"
        path.write_text("section,item,count\r\n")
        os.utime(path, (now - age_seconds - n, now - age_seconds - n))
        paths.append(path)
    return paths


def test_write_to_csv_keeps_only_the_newest_saved_copies(reporter, clock):
    old = _old_copies(reporter.home.logs, MAX_SAVED_CSV, 3600, time.time())
    other = reporter.home.logs / "mailmoat-notes.txt"
    other.write_text("not a saved report")
    response = reporter.post("/reporting/summary", {**window(reporter), "write_csv": "1"})
    assert response.status_code == 200 and response.get_data()    # the stream saves the copy
    saved = saved_csv_files(reporter.home.logs)
    assert len(saved) == MAX_SAVED_CSV
    assert saved[-1].name == "MAILMOAT202701150800.csv"
    assert not old[-1].exists() and old[-2].exists()     # the oldest went
    assert other.exists()


def test_no_copy_is_saved_while_the_disk_is_low(admin, seeded):
    admin.app.extensions["mailmoat"].disk_free = lambda path: LOW_DISK_FRACTION / 2
    response = admin.post("/reporting/detail", {**window(admin), "write_csv": "1"})
    assert response.status_code == 200 and "file_deleted" in response.get_data(as_text=True)
    assert saved_csv_files(admin.home.logs) == []
    admin.app.extensions["mailmoat"].disk_free = lambda path: LOW_DISK_FRACTION * 2
    admin.post("/reporting/detail", {**window(admin), "write_csv": "1"}).get_data()
    assert len(saved_csv_files(admin.home.logs)) == 1


def test_the_retention_job_deletes_saved_copies_older_than_the_retention(home):
    from console.jobs import purge_old_events
    from shared.retention import SECONDS_PER_DAY

    now = time.time()
    clock = FakeClock(now)
    old = _old_copies(home.logs, 3, 8 * SECONDS_PER_DAY, now)
    stale_part = home.logs / "MAILMOAT202601010000-2.csv.part"
    stale_part.write_text("")
    os.utime(stale_part, (now - 8 * SECONDS_PER_DAY, now - 8 * SECONDS_PER_DAY))
    recent = _old_copies(home.logs / "x", 1, 0, now)[0].rename(
        home.logs / "MAILMOAT202701150800.csv")
    writer = EventWriter(home.db, "console", clock)
    try:
        purge_old_events(home, writer, clock)          # retention 0: kept for ever
        assert all(p.exists() for p in old)
        conn = db.connect(home.db)
        try:
            apply_changes(conn, {"logging.retention_days": 7})
        finally:
            conn.close()
        purge_old_events(home, writer, clock)
        writer.flush()
        assert not any(p.exists() for p in old) and not stale_part.exists()
        assert recent.exists()
        conn = db.connect(home.db)
        try:
            info = conn.execute("SELECT info FROM events WHERE action = ? ORDER BY id DESC",
                                (Action.EVENTS_PURGED.value,)).fetchone()[0]
        finally:
            conn.close()
        assert "and 4 saved report CSV file(s) older than 7 days deleted" in info
    finally:
        writer.close()


# --- out-of-range dates (console-security finding 6: 9999-12-31 gave HTTP 500) -------------

def test_an_out_of_range_date_is_a_form_error_not_a_500(reporter):
    response = reporter.get("/reporting/detail?generated=1&start=2026-11-28&end=9999-12-31")
    assert response.status_code == 400
    # each message beside the picker it is about (test_error_fields.py)
    assert '<span class="error" id="end-error">&#39;9999-12-31&#39; is out of range' in \
        response.get_data(as_text=True)
    response = reporter.post("/reporting/summary", {"end": "9999-12-31", "write_csv": "1"})
    assert response.status_code == 400 and b'id="end-error">&#39;9999-12-31&#39; is out of' \
        b' range' in response.data
    response = reporter.get("/reporting/summary?generated=1&start=0001-01-01T00:00%2B14:00")
    assert response.status_code == 400 and b'id="start-error">' in response.data


def test_the_report_command_says_an_out_of_range_date_in_one_line(home, capsys):
    from shared.cli import main

    assert main(["report", "detail", "--to", "9999-12-31", "--home", str(home.root)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "mailmoat: --to: '9999-12-31' is out of range: reports cover the years 1970 to 9998"]


# --- bidi control characters (console-security finding 8) ----------------------------------

def test_bidi_controls_show_as_marks_in_the_report_pages_and_the_csv(admin, clock):
    writer = EventWriter(admin.home.db, "core", FakeClock(clock.now() - 600))
    writer.record(Action.ATTACHMENT_DELETED, queue_id="Q1", sender="\u202eexe.gpj@ext.test",
                  subject="\u200fpay\u061c", data={"file": "\u202egnp.exe"})
    writer.close()
    query = "start=2027-01-14T08:00&end=2027-01-15T08:00&generated=1"
    for tab in ("detail", "summary"):
        page = admin.get(f"/reporting/{tab}?{query}").get_data(as_text=True)
        assert "\u27e8U+202E\u27e9gnp.exe" in page, tab
        assert not any(c in page for c in "\u202e\u200f\u061c"), tab
    page = admin.get(f"/reporting/detail?{query}").get_data(as_text=True)
    assert "\u27e8U+202E\u27e9exe.gpj@ext.test" in page
    assert "\u27e8U+200F\u27e9pay\u27e8U+061C\u27e9" in page
    body = admin.post("/reporting/detail", {**window(admin), "write_csv": "1"}).get_data(
        as_text=True)
    # a spreadsheet renders the override as its sender meant (policy finding C2)
    assert "\u27e8U+202E\u27e9exe.gpj@ext.test" in body and "\u202e" not in body


def test_saved_copies_that_cannot_be_purged_do_not_make_the_event_purge_read_failed(home):
    """The CSV clean-up ran inside the event purge's error handling: a logs/ it could not
    read recorded "the event purge failed" after the events were deleted (console review)."""
    from console.jobs import purge_old_events

    clock = FakeClock(time.time())
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {"logging.retention_days": 7})
    finally:
        conn.close()
    shutil.rmtree(home.logs)
    home.logs.write_text("not a directory")
    writer = EventWriter(home.db, "console", clock)
    try:
        purge_old_events(home, writer, clock)
        writer.flush()
        conn = db.connect(home.db)
        try:
            row = conn.execute("SELECT result, info FROM events WHERE action = ? ORDER BY id "
                               "DESC", (Action.EVENTS_PURGED.value,)).fetchone()
        finally:
            conn.close()
        assert row["result"] == "succeeded"
        assert "saved report CSVs not purged" in row["info"]
    finally:
        writer.close()


def test_an_older_events_lone_surrogate_reads_as_u_fffd_on_the_page_and_in_the_csv(admin,
                                                                                   clock):
    """Upgrade16 finding 2: the older release's object_modified event for a disclaimer text
    holding a lone surrogate (its json.dumps kept "\\ud800") made the Detail Report (every
    action, the default) a 500 and broke Write to CSV off mid-download."""
    writer_clock = FakeClock(clock.now() - 600)
    writer = EventWriter(admin.home.db, "console", writer_clock)
    writer.record(Action.OBJECT_MODIFIED, result="saved", rule="disclaimer.text",
                  info="mailmoat config set", data={
                      "user": "root", "page": "cli",
                      "changes": {"disclaimer.text": ["", "Scanned \ud800 by gw"]}})
    writer.record(Action.ACCEPTED, queue_id="Q-AFTER", subject="after it")
    writer.close()
    response = admin.get("/reporting/detail?generated=1&start=2027-01-14T08:00"
                         "&end=2027-01-15T08:00")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Scanned \ufffd by gw" in page and "Q-AFTER" in page
    body = admin.post("/reporting/detail", {**window(admin), "write_csv": "1"}).get_data(
        as_text=True)
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert [row["action"] for row in rows] == ["object_modified", "accepted"]
    assert rows[0]["info"].endswith('disclaimer.text: "" → "Scanned \ufffd by gw"')
