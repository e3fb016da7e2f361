"""The hold-queue confirmation counts the selection as the action reads it, and a selection
that holds no queue id is refused, never taken for "every message" (console18 B1: `ids=,`
asked about "the 1 selected message(s)", then reprocessed the whole hold queue). A refusal
redirects to the hold queue, which says why (Post/Redirect/Get, review18 R6)."""

from __future__ import annotations

import re

import pytest

from tests.console.test_configuration import _hold

HOLD = "/configuration/hold"


def _refused(admin, response) -> str:
    """The hold-queue page a refused post redirects to (not a page rendered in the POST)."""
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert response.headers["Location"].endswith(HOLD)
    return admin.get(HOLD).get_data(as_text=True)


@pytest.mark.parametrize("ids", [",", " ", " , ,"])
def test_a_selection_of_separators_is_refused_at_both_steps(admin, home, ids):
    _hold(home, "q1aaaa")
    _hold(home, "q2bbbb")
    confirm = admin.post("/configuration/hold/confirm", {"drop": "Drop Messages", "ids": [ids]})
    page = _refused(admin, confirm)
    assert "Nothing was done: the selection holds no queue id" in page
    assert "selected message(s)" not in page and "Drop all" not in page
    action = admin.post("/configuration/hold/action",
                        {"action": "reprocess", "ids": ids, "confirm": "Yes"})
    assert "Nothing was done: the selection holds no queue id" in _refused(admin, action)
    assert admin.commands() == []


def test_the_question_counts_what_the_action_acts_on(admin, home):
    _hold(home, "q1aaaa")
    _hold(home, "q2bbbb")
    _hold(home, "q3cccc")
    confirm = admin.post("/configuration/hold/confirm",
                         {"drop": "Drop Messages", "ids": ["q1aaaa,", " q2bbbb", "q1aaaa"]})
    page = confirm.get_data(as_text=True)
    assert "Drop the 2 selected message(s)?" in page
    [ids] = re.findall(r'name="ids" type="hidden" value="([^"]*)"', page)
    assert ids == "q1aaaa,q2bbbb"
    admin.post("/configuration/hold/action", {"action": "drop", "ids": ids, "confirm": "Yes"})
    assert admin.commands()[-1]["args"] == {"ids": ["q1aaaa", "q2bbbb"]}


def test_an_id_that_is_no_queue_id_is_refused_before_the_question(admin, home):
    _hold(home, "q1aaaa")
    confirm = admin.post("/configuration/hold/confirm",
                         {"drop": "Drop Messages", "ids": ["../../../etc/passwd"]})
    page = _refused(admin, confirm)
    assert "Nothing was done: &#39;../../../etc/passwd&#39; is not a queue id" in page
    assert "selected message(s)" not in page
    assert admin.commands() == []
