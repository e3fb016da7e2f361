"""A Hebrew subject in headless Chromium's Detail Report (tester i18n19 C2): its "!" ends the
sentence on the left of the Hebrew words, as a reader of Hebrew writes it, in the Subject
cell and where the Info sentence quotes it. Before, the cells were laid out left to right
and the "!" stood on the right of the Hebrew run, the quote and asterisk of the pattern
moved with it. Screenshot in test-artifacts/."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.clock import FakeClock
from shared.events import Action, EventWriter

from .conftest import log_on

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SUBJECT = "מבצע!"              # one word and its "!": never wrapped apart

# x of the "!" and of the first "מ" of SUBJECT inside the element, as laid out
POSITIONS = """cell => {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    const at = {};
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const j = node.data.indexOf("מבצע!");
        for (const [name, k] of [["bang", j < 0 ? -1 : j + 4], ["first", j]]) {
            if (k < 0 || name in at) continue;
            const range = document.createRange();
            range.setStart(node, k);
            range.setEnd(node, k + 1);
            const box = range.getBoundingClientRect();
            at[name] = box.x;
            at[name + "_y"] = box.y;
        }
    }
    return at;
}"""


def test_a_hebrew_subject_keeps_its_punctuation_on_its_side(page, console_server, artifacts):
    now = console_server.context.clock.now()
    writer = EventWriter(console_server.home.db, process="core", clock=FakeClock(now - 600))
    writer.record(Action.SUBJECT_BLOCKED, queue_id="HE1", rule="subject.lines",
                  subject=SUBJECT, sender="a@example.com", recipients=["b@example.net"],
                  info=f"subject {SUBJECT!r} matches blocked subject line '*מבצע*'",
                  data={"pattern": "*מבצע*", "subject": SUBJECT})
    writer.close()
    log_on(page)

    def picker(unix: float) -> str:
        return dt.datetime.fromtimestamp(unix, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M")
    page.goto(f"/reporting/detail?generated=1&start={picker(now - 3600)}&end="
              f"{picker(now + 60)}&actions=subject_blocked")
    row = page.locator("#detail-table tbody tr", has_text="HE1")
    subject_cell = row.locator("td").nth(9)
    info_cell = row.locator("td").nth(12)
    page.screenshot(path=str(artifacts / "reporting-detail-hebrew.png"), full_page=True)
    for cell in (subject_cell, info_cell):
        at = cell.evaluate(POSITIONS)
        assert at["bang_y"] == at["first_y"], (cell.inner_text(), at)      # one line
        assert at["bang"] < at["first"], (cell.inner_text(), at)
