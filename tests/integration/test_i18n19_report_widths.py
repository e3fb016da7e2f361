"""`mailmoat report` text tables line up in a terminal with CJK text in them (tester i18n19
C1): a wide character takes two columns and a combining mark none, so padding by characters
pushed every later column right by one per CJK character (`*特価*   7` against
`*срочно*   5`). Events are seeded through the event writer; the report runs as a real
subprocess (tests/integration/test_report_cli.py `report`)."""

from __future__ import annotations

import unicodedata

from shared.clock import FakeClock
from shared.events import Action, EventWriter
from tests.integration.test_report_cli import T0, report
from tests.support.core import make_home

WINDOW = ["--from", "2027-01-15T07:00Z", "--to", "2027-01-15T09:00Z"]


def columns(text: str) -> int:
    """Terminal columns of `text` (UAX #11 east-asian width; marks take none)."""
    return sum(0 if unicodedata.combining(ch) else
               2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _home(tmp_path):
    home = make_home(tmp_path / "home")
    writer = EventWriter(home.db, "core", FakeClock(T0))
    for queue_id, subject, pattern, times in (("QJ", "特価のお知らせ", "*特価*", 3),
                                              ("QR", "Срочно: отчёт", "*срочно*", 2),
                                              ("QE", "Re\u0301sume\u0301", "*résumé*", 1)):
        writer.record(Action.ACCEPTED, queue_id=queue_id, size=1234, sender="a@例子.测试",
                      recipients=["b@example.com"], subject=subject)
        for _ in range(times):
            writer.record(Action.SUBJECT_BLOCKED, queue_id=queue_id, rule="subject.lines",
                          subject=subject, data={"pattern": pattern, "subject": subject})
    writer.close()
    return home


def test_detail_columns_after_a_cjk_subject_line_up(tmp_path):
    out, _ = report(_home(tmp_path), "detail", *WINDOW, "--action", "accepted")
    header, rule, *rows = out.splitlines()
    assert len(rows) == 3
    # the size column ends where its heading ends, in every row
    size_end = columns(header[:header.index("size") + len("size")])
    for row in rows:
        before, _, _ = row.partition("1234")
        assert columns(before) + 4 == size_end, row


def test_summary_counts_after_cjk_and_decomposed_names_line_up(tmp_path):
    out, _ = report(_home(tmp_path), "summary", *WINDOW)
    section = out.split("Subjects Blocked\n", 1)[1].split("\n\n", 1)[0].splitlines()
    rows = [line for line in section if line.startswith(("*", "Name", "Total"))]
    assert [row.split()[-1] for row in rows] == ["Count", "3", "2", "1", "6"]
    assert len({columns(row) for row in rows}) == 1, rows
