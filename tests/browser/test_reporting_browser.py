"""Reporting in headless Chromium: generate a detail report, download the CSV, read it with
Python's csv module; the summary tab's charts. Screenshots go to test-artifacts/."""

from __future__ import annotations

import csv
import datetime as dt

import pytest

from shared.clock import FakeClock
from shared.events import Action, EventWriter

from .conftest import log_on

# real Chromium, a second or more per test: run by `make test-slow` with the other slow suites
pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def seeded(console_server):
    now = console_server.context.clock.now()
    clock = FakeClock(now)
    writer = EventWriter(console_server.home.db, process="core", clock=clock)
    for i in range(30):
        clock.value = now - 3 * 3600 + i * 300
        writer.record(Action.ACCEPTED, queue_id=f"BQ{i:02d}", size=4096,
                      sender="alice@example.com", recipients=["bob@example.net"],
                      subject=f"Quarterly report {i}", client_ip="192.0.2.10")
        writer.record(Action.DELIVERED, queue_id=f"BQ{i:02d}", recipients=["bob@example.net"])
    clock.value = now - 1800
    writer.record(Action.FILE_DELETED, queue_id="BQ05", data={"virus": "EICAR-Test-File"},
                  subject="=HYPERLINK(\"http://x\")")
    writer.record(Action.SUBJECT_BLOCKED, queue_id="BQ06", subject="Hot stock tips",
                  data={"pattern": "*hot stock*"})
    writer.close()
    return now


def _picker(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M")


def test_generate_detail_report_and_download_csv(page, console_server, seeded, artifacts):
    log_on(page)
    page.click("nav.left-pane >> text=Reporting")
    page.wait_for_selector("h1:has-text('Reporting')")
    page.click("ul.tabs >> text=Detail Report")
    page.fill("#start", _picker(seeded - 6 * 3600))
    page.fill("#end", _picker(seeded + 60))
    page.check("input[name=actions][value=accepted]")
    page.check("input[name=actions][value=file_deleted]")
    page.click("#generate")
    page.wait_for_selector("#detail-table")
    assert page.locator("#detail-count").inner_text() == "Events 1–31 of 31"
    assert page.locator("#detail-table tbody tr").count() == 31
    page.screenshot(path=str(artifacts / "reporting-detail.png"), full_page=True)

    with page.expect_download() as info:
        page.click("#write-csv")
    download = info.value
    assert download.suggested_filename.startswith("MAILMOAT")
    assert download.suggested_filename.endswith(".csv")
    path = download.path()
    with open(path, newline="", encoding="utf-8-sig") as handle:     # Excel's byte-order mark
        rows = list(csv.reader(handle))
    assert rows[0] == ["time", "category", "action", "result", "queue_id", "connection_id",
                       "client_ip", "sender", "recipients", "subject", "size", "rule", "info"]
    assert len(rows) == 32
    assert [r[2] for r in rows[1:]].count("accepted") == 30
    virus = next(r for r in rows if r[2] == "file_deleted")
    assert virus[9] == "'=HYPERLINK(\"http://x\")" and virus[12] == "virus=EICAR-Test-File"
    saved = console_server.home.logs / download.suggested_filename
    assert saved.read_bytes() == open(path, "rb").read()
    assert page.console_errors == []


def test_summary_report_shows_figures_and_charts(page, console_server, seeded, artifacts):
    log_on(page)
    page.goto("/reporting/")
    page.fill("#start", _picker(seeded - 6 * 3600))
    page.fill("#end", _picker(seeded + 60))
    page.click("#generate")
    page.wait_for_selector("#disposition-chart")
    accepted = page.locator("#section-message tr:has(th:text-is('Messages Accepted')) td")
    assert accepted.inner_text() == "30"
    assert page.locator("#disposition-chart").is_visible()
    assert "Accepted: 30" in page.locator("#disposition-chart").text_content()
    assert "EICAR-Test-File" in page.locator("#top-viruses").text_content()
    assert "*hot stock*" in page.locator("#top-subjects").text_content()
    page.screenshot(path=str(artifacts / "reporting-summary.png"), full_page=True)
    assert page.console_errors == []


def test_a_saved_change_is_in_the_default_report_with_its_user_and_values(
        page, console_server, artifacts):
    """Save a setting, open Reporting › Detail and generate with the pickers as they come:
    the change is there (the default To is the next minute), with who and what, escaped."""
    payload = '"><script>window.__x=1</script>'
    log_on(page)
    page.goto("/filtering/content")
    page.fill("#subject__lines", f"*{payload}*")
    page.click("#save")
    page.wait_for_selector(".flash")
    console_server.context.events.flush()
    page.click("nav.left-pane >> text=Reporting")
    page.click("ul.tabs >> text=Detail Report")
    page.check("input[name=actions][value=object_modified]")
    page.click("#generate")
    page.wait_for_selector("#detail-table")
    row = page.locator("#detail-table tbody tr").last
    assert row.locator("td.user").inner_text() == "admin"
    assert row.locator("td.details").inner_text() == \
        'subject.lines: [] → ["*\\"><script>window.__x=1</script>*"]'
    assert page.evaluate("document.querySelectorAll('main script').length") == 0
    assert page.evaluate("window.__x === undefined")
    page.screenshot(path=str(artifacts / "reporting-object-modified.png"), full_page=True)
    page.evaluate("document.querySelector('.table-scroll').scrollLeft = 10000")  # to Details
    page.locator(".table-scroll").screenshot(
        path=str(artifacts / "reporting-object-modified-table.png"))
    assert page.console_errors == []
