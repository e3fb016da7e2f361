"""A long subject or address does not widen the Detail Report's table (consolefix, session
22): a 400-character subject without a space, or a long unbroken address, set its column's
width, the table grew from 1,598 px to 4,976 px in its 1,008 px scroll box at a 1280 px
window, and the columns after it were screens away. Measured in Chromium: the table with
such a row against the same report without it, and against the window."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.clock import FakeClock
from shared.events import Action, EventWriter

from .conftest import log_on

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLIENT = "192.0.2.77"           # every seeded row; the ordinary ones alone have ORDINARY
ORDINARY = "qordinaryq"
SUBJECT = "S" * 400
SENDER = "averylongunbrokenlocalpart" * 4 + "@example.com"      # no hyphen to wrap at
RECIPIENTS = [f"{'recipientwithalongunbrokenname' * 3}{n}@example.net" for n in range(3)]
WIDE_COLUMNS = ("Sender", "Recipients", "Subject")

MEASURE = """() => {
    const table = document.querySelector('#detail-table');
    const rem = parseFloat(getComputedStyle(document.documentElement).fontSize);
    const columns = {};
    for (const th of table.querySelectorAll('thead th'))
        columns[th.textContent] = th.getBoundingClientRect().width / rem;
    // a cell whose text runs out of it (scrollWidth past its box) is cut off by its neighbour
    const overflowing = [...table.querySelectorAll('tbody td')]
        .filter(td => td.scrollWidth > td.clientWidth + 1).map(td => td.textContent);
    return {table: table.getBoundingClientRect().width, columns, overflowing,
            page: document.documentElement.scrollWidth, window: innerWidth};
}"""


@pytest.fixture(scope="module")
def seeded(console_server):
    now = console_server.context.clock.now()
    writer = EventWriter(console_server.home.db, process="core", clock=FakeClock(now - 600))
    for n in range(2):
        writer.record(Action.ACCEPTED, queue_id=f"ORD{n}", size=4096, client_ip=CLIENT,
                      sender="alice@example.com", recipients=["bob@example.net"],
                      subject=f"Quarterly report {n} {ORDINARY}")
    writer.record(Action.ACCEPTED, queue_id="LONG1", size=4096, client_ip=CLIENT,
                  sender=SENDER, recipients=RECIPIENTS, subject=SUBJECT)
    writer.close()
    return now


def _picker(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M")


def _measured(page, now: float, search: str) -> dict:
    page.goto(f"/reporting/detail?generated=1&start={_picker(now - 3600)}"
              f"&end={_picker(now + 120)}&search={search}")
    page.wait_for_selector("#detail-table")
    return page.evaluate(MEASURE)


@pytest.mark.parametrize("width", [1280, 1920])
def test_a_long_subject_and_long_addresses_wrap_instead_of_widening_the_table(
        browser, console_server, seeded, artifacts, width):
    context = browser.new_context(base_url=console_server.urls()["http"].rstrip("/"),
                                  viewport={"width": width, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        log_on(page)
        ordinary = _measured(page, seeded, ORDINARY)
        crowded = _measured(page, seeded, CLIENT)
        page.screenshot(path=str(artifacts / f"reporting-detail-long-cells-{width}.png"),
                        full_page=True)
        row = page.locator("#detail-table tbody tr", has_text="LONG1")
        # the whole text is on the page, wrapped within its cell
        assert row.locator("td").nth(9).inner_text().replace("\n", "") == SUBJECT
        assert row.locator("td").nth(7).inner_text().replace("\n", "") == SENDER
        assert crowded["overflowing"] == []
    finally:
        context.close()
    assert crowded["page"] == crowded["window"]         # the page never scrolls sideways
    # The long row adds what its three columns may grow by, to 20rem each: less than half a
    # window (564 px at 1280). Before, more than two windows (4,976 px against 1,598).
    assert crowded["table"] - ordinary["table"] < crowded["window"] / 2, (ordinary, crowded)
    for name in WIDE_COLUMNS:
        assert crowded["columns"][name] <= 22, (name, crowded["columns"])
    # and the other columns keep the widths they have without it
    for name, rems in ordinary["columns"].items():
        if name not in WIDE_COLUMNS:
            assert crowded["columns"][name] == pytest.approx(rems, abs=0.1), name
