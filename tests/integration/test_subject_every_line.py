"""A subject that matches several blocked subject lines is reported under each of them (guide
§7 Subjects Blocked: "If a message meets more than one subject-line blocking criteria ...
reports each subject violation in the detail report"; tester "guide", finding 5), end to end:
smtplib -> the core on loopback -> its events -> the summary report. The message is still
handled once.

Before: one subject_blocked event, for the first line only; Subjects Blocked read
`*free* 1, Total 1`.
"""

from __future__ import annotations

import json

import pytest
import trio

from core.app import run_core
from shared import db
from shared.events import Action
from shared.report import summarise
from shared.report_time import ReportRange
from tests.support.core import routed_home
from tests.support.mail import send_text
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

EVERYTHING = ReportRange(0, 4_000_000_000)


def _subjects_blocked(home) -> tuple[list, int | None]:
    conn = db.connect(home.db)
    try:
        section = summarise(conn, EVERYTHING, premium=False).section("subjects_blocked")
        return section.rows, section.total
    finally:
        conn.close()


@pytest.mark.parametrize("action,disposition", [("drop", Action.DROPPED),
                                                ("log", Action.DELIVERED)])
async def test_each_matching_subject_line_has_its_event_and_summary_count(
        tmp_path, sink, nursery, action, disposition):
    home = routed_home(tmp_path, sink, subject__enabled=True, subject__action=action,
                       subject__lines=["*free*", "*nothing*", "*money*"])
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(send_text, core.smtp_addresses[0][1], "Re: FREE money now")
    await until(lambda: events_of(home, disposition))
    await core.events.aflush()

    blocked = events_of(home, Action.SUBJECT_BLOCKED)
    assert [json.loads(row["data"])["pattern"] for row in blocked] == ["*free*", "*money*"]
    assert {row["queue_id"] for row in blocked} == {events_of(home, disposition)[0]["queue_id"]}
    [handled] = events_of(home, disposition)            # one disposition for the message
    if action == "drop":
        assert handled["rule"] == "subject.lines" and sink.messages == []
    assert _subjects_blocked(home) == ([("*free*", 1), ("*money*", 1)], 2)
    core.cancel_scope.cancel()
