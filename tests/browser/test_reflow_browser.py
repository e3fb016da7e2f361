"""The console in a 400 px wide window (WCAG 1.4.10 Reflow; findings15/accessibility.md C1,
C10, C13): no page scrolls sideways, only a wide table or chart inside its own box; the first
Tab stop is a visible "Skip to main content" link; chart text keeps a legible size."""

from __future__ import annotations

import pytest

from shared import db
from shared.clock import FakeClock
from shared.events import Action, EventWriter
from shared.status import new_snapshot, write_snapshot

from .conftest import log_on

# real Chromium, a second or more per test: run by `make test-slow` with the other slow suites
pytestmark = [pytest.mark.browser, pytest.mark.slow]

NARROW = {"width": 400, "height": 800}
PAGES = ["/status/", "/configuration/setup", "/configuration/setup/certificates",
         "/configuration/accounts", "/antivirus/", "/configuration/routing",
         "/antispam/spam-rules", "/quarantine/"]


@pytest.fixture
def narrow(browser, console_server):
    context = browser.new_context(base_url=console_server.urls()["http"].rstrip("/"),
                                  viewport=NARROW)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def traffic(console_server):
    """A status snapshot and a few hours of traffic, so the Status and Summary charts draw."""
    conn = db.connect(console_server.home.db)
    try:
        write_snapshot(conn, new_snapshot(version="0.1.0", hostname="gw.example.com",
                                          smtp_port=25,
                                          started_at=console_server.context.clock.now() - 7200))
    finally:
        conn.close()
    clock = FakeClock(console_server.context.clock.now())
    writer = EventWriter(console_server.home.db, process="core", clock=clock)
    for hours_ago, count in ((20, 4), (6, 9), (1, 3)):
        clock.value = console_server.context.clock.now() - hours_ago * 3600
        for action in (Action.ACCEPTED, Action.DELIVERED, Action.DROPPED):
            for _ in range(count):
                writer.record(action)
    writer.close()


def page_width(page) -> dict:
    return page.evaluate("() => ({scroll: document.documentElement.scrollWidth,"
                         " client: document.documentElement.clientWidth})")


@pytest.mark.parametrize("url", PAGES)
def test_a_page_fits_a_400_px_window(narrow, traffic, url, artifacts):
    log_on(narrow)
    narrow.goto(url)
    width = page_width(narrow)
    narrow.screenshot(path=str(artifacts / f"reflow-400{url.replace('/', '_')}.png"),
                      full_page=True)
    assert width["scroll"] <= NARROW["width"], width


def test_the_summary_report_fits_a_400_px_window_and_its_chart_stays_legible(narrow, traffic):
    log_on(narrow)
    narrow.goto("/reporting/summary")
    narrow.click("#generate")
    narrow.wait_for_selector("#disposition-chart")
    assert page_width(narrow)["scroll"] <= NARROW["width"]
    # the chart scrolls inside its box instead of shrinking its 11-13 unit text to ~5 px
    assert _smallest_text_px(narrow, "#disposition-chart") >= 8.5


def test_the_status_chart_text_stays_legible_at_400_px(narrow, traffic):
    log_on(narrow)
    narrow.goto("/status/")
    assert _smallest_text_px(narrow, "#traffic-chart") >= 9


def _smallest_text_px(page, chart: str) -> float:
    """The smallest rendered font size (CSS px) of the chart's horizontal text."""
    return page.evaluate("""(chart) => {
        const svg = document.querySelector(chart);
        const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
        const sizes = [...svg.querySelectorAll('text:not([transform])')]
            .map(t => parseFloat(t.getAttribute('font-size')) * scale);
        return Math.min(...sizes); }""", chart)


def test_the_first_tab_stop_is_a_visible_skip_link_to_the_content(narrow):
    log_on(narrow)
    narrow.goto("/configuration/setup")
    narrow.keyboard.press("Tab")
    focused = narrow.evaluate("() => { const e = document.activeElement;"
                              " const r = e.getBoundingClientRect();"
                              " return {text: e.textContent, top: r.top, bottom: r.bottom,"
                              "         left: r.left, right: r.right}; }")
    assert focused["text"] == "Skip to main content"
    assert 0 <= focused["top"] < focused["bottom"] <= NARROW["height"]   # shown, not off-screen
    assert 0 <= focused["left"] < focused["right"] <= NARROW["width"]
    narrow.keyboard.press("Enter")
    assert narrow.evaluate("() => document.activeElement.id") == "main"
    narrow.keyboard.press("Tab")  # the next stop is inside the content: the first tab
    assert narrow.evaluate("() => document.activeElement.closest('main') !== null")


@pytest.mark.parametrize("width", [400, 1280])
def test_the_virus_quarantine_list_fits_the_window(browser, console_server, width):
    """An 11-column list whose cells hold long unbroken words (a subject, file names) wraps
    them rather than run past the page, in a wide window too."""
    from tests.console.test_virus_quarantine_delete import _quarantine

    if not any(console_server.home.queue("quarantine/virus").glob("0LONG*")):
        _quarantine(console_server.home, "0LONGLONGLONG",
                    "Invoice_" + "0123456789" * 8 + "_overdue_final_notice")
    context = browser.new_context(base_url=console_server.urls()["http"].rstrip("/"),
                                  viewport={"width": width, "height": 800})
    page = context.new_page()
    try:
        log_on(page)
        page.goto("/antivirus/quarantine")
        page.wait_for_selector("#virus-quarantine")
        assert page_width(page)["scroll"] <= width
    finally:
        context.close()
