"""A Hebrew subject in headless Chromium's Detail Report (tester i18n19 C2): its "!" ends the
sentence on the left of the Hebrew words, as a reader of Hebrew writes it, in the Subject
cell and where the Info sentence quotes it. Before, the cells were laid out left to right
and the "!" stood on the right of the Hebrew run, the quote and asterisk of the pattern
moved with it. Addresses and file names read left to right whatever letter they begin
with: `מסמך.exe` keeps `.exe` at its right end, `אבי@bank.example` its domain right of the
"@", and a Hebrew first recipient stays left of the second (review19 r4 R1; with the cell's
direction taken from the first letter they read `exe.ךמסמ`, `bank.example@יבא` and
`x.test; bob@y.test@ש`). Screenshot in test-artifacts/."""

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

# every character of the element's text, in logical order, with the line (y) and x it is
# laid out at
CHARACTERS = """cell => {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    const out = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (let k = 0; k < node.data.length; k++) {
            const range = document.createRange();
            range.setStart(node, k);
            range.setEnd(node, k + 1);
            const box = range.getBoundingClientRect();
            out.push([node.data[k], box.y, box.x]);
        }
    }
    return out;
}"""


def _picker(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M")


def test_a_hebrew_subject_keeps_its_punctuation_on_its_side(page, console_server, artifacts):
    now = console_server.context.clock.now()
    writer = EventWriter(console_server.home.db, process="core", clock=FakeClock(now - 600))
    writer.record(Action.SUBJECT_BLOCKED, queue_id="HE1", rule="subject.lines",
                  subject=SUBJECT, sender="a@example.com", recipients=["b@example.net"],
                  info=f"subject {SUBJECT!r} matches blocked subject line '*מבצע*'",
                  data={"pattern": "*מבצע*", "subject": SUBJECT})
    writer.close()
    log_on(page)
    page.goto(f"/reporting/detail?generated=1&start={_picker(now - 3600)}&end="
              f"{_picker(now + 60)}&actions=subject_blocked")
    row = page.locator("#detail-table tbody tr", has_text="HE1")
    subject_cell = row.locator("td").nth(9)
    info_cell = row.locator("td").nth(12)
    page.screenshot(path=str(artifacts / "reporting-detail-hebrew.png"), full_page=True)
    for cell in (subject_cell, info_cell):
        at = cell.evaluate(POSITIONS)
        assert at["bang_y"] == at["first_y"], (cell.inner_text(), at)      # one line
        assert at["bang"] < at["first"], (cell.inner_text(), at)


def test_addresses_and_file_names_read_left_to_right(page, console_server, artifacts):
    now = console_server.context.clock.now()
    writer = EventWriter(console_server.home.db, process="core", clock=FakeClock(now - 600))
    writer.record(Action.ATTACHMENT_DELETED, queue_id="HE2", rule="filename.patterns",
                  subject="Offer", sender="אבי@bank.example",
                  recipients=["ש@x.test", "bob@y.test"],
                  data={"file": "מסמך.exe", "pattern": "*.exe"})
    writer.close()
    log_on(page)
    page.goto(f"/reporting/detail?generated=1&start={_picker(now - 3600)}&end="
              f"{_picker(now + 60)}&actions=attachment_deleted")
    row = page.locator("#detail-table tbody tr", has_text="HE2")
    page.screenshot(path=str(artifacts / "reporting-detail-hebrew-identifiers.png"),
                    full_page=True)

    def x_of(cell, text: str) -> list[tuple[float, float]]:
        """(line, x) of each character of `text` where it first occurs in the cell's text:
        reading order, a narrow cell may wrap"""
        laid = cell.evaluate(CHARACTERS)
        whole = "".join(ch for ch, _, _ in laid)
        start = whole.index(text)
        return [(round(y), x) for _, y, x in laid[start:start + len(text)]]

    sender = x_of(row.locator("td").nth(7), "אבי@bank.example")
    assert sender[0] < sender[3] < sender[4] < sender[-1], sender     # Hebrew, "@", domain
    recipients = x_of(row.locator("td").nth(8), "ש@x.test; bob@y.test")
    assert recipients[0] < recipients[1] < recipients[2] < recipients[10], recipients
    name = x_of(row.locator("td.details"), "מסמך.exe")
    assert name[0] < name[4] < name[5] < name[-1], name                # ".exe" on the right
