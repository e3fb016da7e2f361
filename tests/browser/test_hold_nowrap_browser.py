"""The hold-queue table keeps each queue id and size on one line (console18 C5: at 1300 px
the Size column read "43 / 66" and the queue id "D257SN / W6GP9N", each on two lines, as
every table cell may break a long word anywhere). Measured in Chromium: the line boxes of
the text, with long senders, recipients and reasons pressing on the narrow columns (review18
T3: the test before only read the CSS text)."""

from __future__ import annotations

import json

import pytest

from tests.console.test_configuration import _hold

from .conftest import log_on

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUEUE_ID = "D257SNW6GP9N"
LONG = "a-very-long-unbroken-local-part-" * 3


@pytest.fixture
def crowded_hold(console_server):
    """One held message whose other cells are long, unbroken words."""
    home = console_server.home
    if not (home.queue("hold") / QUEUE_ID).exists():
        _hold(home, QUEUE_ID, sender=f"{LONG}@example.com",
              reason="crashed the processor 3 times: " + "ResourceExhausted" * 8)
        envelope = home.queue("hold") / QUEUE_ID / "envelope.json"
        data = json.loads(envelope.read_text())
        data["recipients"] = [{"address": f"{LONG}{n}@example.net", "status": "pending"}
                              for n in range(3)]
        data["size"] = 43_660_066
        envelope.write_text(json.dumps(data))


LINES = """() => {
    const row = [...document.querySelectorAll('#hold-list tbody tr')]
        .find(r => r.textContent.includes('%s'));
    const lines = node => {
        const range = document.createRange();
        range.selectNodeContents(node);
        return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
    };
    return {id: lines(row.querySelector('code')), size: lines(row.querySelector('td.num'))};
}""" % QUEUE_ID


@pytest.mark.parametrize("width", [1300, 1024])
def test_queue_ids_and_sizes_of_the_hold_table_stay_on_one_line(browser, console_server,
                                                                crowded_hold, width):
    context = browser.new_context(base_url=console_server.urls()["http"].rstrip("/"),
                                  viewport={"width": width, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        log_on(page)
        page.goto("/configuration/hold")
        page.wait_for_selector("#hold-list")
        assert page.evaluate(LINES) == {"id": 1, "size": 1}
    finally:
        context.close()
