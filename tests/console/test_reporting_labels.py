"""The detail report names actions as its checkboxes do, and the "Failed logon" checkbox says
where a single failed logon is (tester "guide", finding 11: the table showed `file_deleted`
beside the checkbox "Files deleted"; ticking "Failed logon" after one failed logon found
nothing, since guide Table 7-5 reports it as Logon, result Failed, and `failed_logon` is
written from the third failure on, for the Frequent Failed Logon Attempts alert)."""

from __future__ import annotations

import html
import re

from shared.events import Action
from shared.report import ACTION_LABELS
from tests.console.test_reporting import detail_cells, seeded, window  # noqa: F401  (fixture)


def test_the_table_names_each_action_as_the_checkboxes_do(admin, seeded):  # noqa: F811
    page = admin.get("/reporting/detail?generated=1&start={start}&end={end}"
                     "&actions=file_deleted&actions=subject_blocked"
                     .format(**window(admin))).get_data(as_text=True)
    rows = detail_cells(page)
    assert [row["Action"] for row in rows] == [ACTION_LABELS[Action.FILE_DELETED],
                                               ACTION_LABELS[Action.SUBJECT_BLOCKED]]
    assert "Files deleted" in rows[0]["Action"] and "file_deleted" not in rows[0]["Action"]
    # the checkbox of the same action carries the same words
    assert re.search(r'value="file_deleted"[^>]*> Files deleted</label>', page)


def test_one_failed_logon_is_found_from_the_failed_logon_checkbox(console):
    assert console.logon("admin", "not the password").status_code == 200
    assert console.logon().status_code == 302
    assert [e["result"] for e in console.events(Action.LOGON)] == ["failed", "succeeded"]
    assert console.events(Action.FAILED_LOGON) == []            # one failure raises no alert
    form = console.get("/reporting/detail").get_data(as_text=True)
    hint = re.search(r'id="failed-logon-hint">(.*?)</span>', form, re.S).group(1)
    assert "Logon event with result failed" in html.unescape(hint)
    link = html.unescape(re.search(r'href="([^"]+)" id="failed-logons-link"', form).group(1))
    rows = detail_cells(console.get(link).get_data(as_text=True))
    assert [(row["Action"], row["Result"]) for row in rows] == [("Logon", "failed")]
