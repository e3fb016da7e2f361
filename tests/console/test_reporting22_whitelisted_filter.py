"""The Detail Report can leave out the antispam events whose result is `whitelisted`
(consolefix 3): a check that stood aside for a whitelisted sender is no block, and an
administrator looking for what was blocked had them among the blocks, with no way to leave
them out (the action boxes select the blocks of the same actions too). One box,
"Leave out whitelisted passes", filters the page, its total, its pages and Write to CSV
alike (shared.report DetailFilter.without_whitelisted); the CLI has no such option (SPEC §2).
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from shared.clock import FakeClock
from shared.events import WHITELISTED, Action, EventWriter

WINDOW = {"start": "2027-01-14T08:00", "end": "2027-01-15T08:00"}    # whole hours: roll-ups
ACCEPTED = 110          # more than one page of 100
WHITELISTED_EVENTS = [(Action.SENDER_BLOCKED, "W1"), (Action.SPAM_LIST_BLOCK, "W2"),
                      (Action.HEURISTIC_SPAM, "W3"), (Action.HEURISTIC_SPAM, "W4")]
BLOCKS = [(Action.SENDER_BLOCKED, "B1", "rejected"), (Action.HEURISTIC_SPAM, "B2", "dropped")]
EVERY_EVENT = ACCEPTED + len(WHITELISTED_EVENTS) + len(BLOCKS)


@pytest.fixture
def seeded(admin, clock):
    writer_clock = FakeClock(clock.now())
    writer = EventWriter(admin.home.db, "core", writer_clock)
    for i in range(ACCEPTED):
        writer_clock.value = clock.now() - 3600 * 5 + i * 60
        writer.record(Action.ACCEPTED, queue_id=f"A{i:03d}", sender="a@example.com",
                      recipients=["b@example.net"], subject=f"Message {i}")
    writer_clock.value = clock.now() - 600
    for action, queue_id in WHITELISTED_EVENTS:
        writer.record(action, queue_id=queue_id, result=WHITELISTED,
                      rule="whitelist.custom friend@example.org")
    for action, queue_id, result in BLOCKS:
        writer.record(action, queue_id=queue_id, result=result)
    writer.close()
    return admin


def _generate(admin, **fields) -> tuple[str, str]:
    """(the report's URL, its page) after Generate Report."""
    response = admin.post("/reporting/detail", {**WINDOW, **fields, "generate": "1"})
    assert response.status_code == 302
    url = response.headers["Location"]
    return url, admin.get(url).get_data(as_text=True)


def _pages(admin, url: str) -> tuple[list[str], list[str]]:
    """Every page of a report from its URL on, following Next: (the rows' queue ids, the
    rows' results)."""
    ids, results = [], []
    while url:
        page = admin.get(url).get_data(as_text=True)
        for row in re.findall(r"<tr><td class=\"time\">.*?</tr>", page, re.S):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            results.append(cells[3])
            ids.append(re.sub(r"</?code>", "", cells[4]))
        found = re.search(r'href="([^"]+)" id="next-page"', page)
        url = found.group(1).replace("&amp;", "&") if found else None
    return ids, results


def _box(page: str) -> str:
    return re.search(r'<input[^>]*id="without-whitelisted"[^>]*>', page).group()


def test_the_box_is_on_the_detail_form_off_by_default(admin):
    box = _box(admin.get("/reporting/detail").get_data(as_text=True))
    assert 'type="checkbox"' in box and "checked" not in box


def test_whitelisted_passes_are_left_out_of_every_page_and_the_total(seeded):
    url, page = _generate(seeded)
    assert f"of {EVERY_EVENT}" in page                      # the default: every event
    assert _pages(seeded, url)[1].count(WHITELISTED) == len(WHITELISTED_EVENTS)

    url, page = _generate(seeded, without_whitelisted="y")
    assert "without_whitelisted=y" in url
    assert f"Events 1–100 of {EVERY_EVENT - len(WHITELISTED_EVENTS)}" in page
    assert " checked " in _box(page)                       # it stays chosen
    ids, results = _pages(seeded, url)                      # Next keeps the box
    assert len(ids) == EVERY_EVENT - len(WHITELISTED_EVENTS)
    assert {"B1", "B2"} <= set(ids)                         # the blocks stay
    assert WHITELISTED not in results
    assert not {queue_id for _, queue_id in WHITELISTED_EVENTS} & set(ids)


def test_with_actions_chosen_it_leaves_out_only_their_whitelisted_passes(seeded):
    url, page = _generate(seeded, actions=["heuristic_spam", "sender_blocked"])
    assert "Events 1–5 of 5" in page
    url, page = _generate(seeded, actions=["heuristic_spam", "sender_blocked"],
                          without_whitelisted="y")
    assert "Events 1–2 of 2" in page
    assert _pages(seeded, url)[0] == ["B1", "B2"]


def test_write_to_csv_follows_the_box(seeded):
    def csv_rows(**fields) -> list[list[str]]:
        response = seeded.post("/reporting/detail", {**WINDOW, **fields, "write_csv": "1"})
        assert response.status_code == 200 and response.mimetype == "text/csv"
        return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"),
                                           newline="")))[1:]

    every = csv_rows()
    assert sum(row[3] == WHITELISTED for row in every) == len(WHITELISTED_EVENTS)
    left = csv_rows(without_whitelisted="y")
    assert len(left) == EVERY_EVENT - len(WHITELISTED_EVENTS)
    assert [row for row in every if row[3] != WHITELISTED] == left
    assert [row[4] for row in csv_rows(actions=["heuristic_spam"], without_whitelisted="y")] \
        == ["B2"]
