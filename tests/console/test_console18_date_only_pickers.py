"""A report URL whose From/To the datetime-local pickers cannot show (a date alone, a time
with its offset) shows in them the times the report used, so that Generate Report again runs
the same range (console18 C3: the pickers were left empty, and a second Generate ran
another range)."""

from __future__ import annotations

import pytest

from tests.console.test_reporting import picker_values


@pytest.mark.parametrize("start, end, shown", [
    ("2027-01-14", "2027-01-15", ("2027-01-14T00:00", "2027-01-16T00:00")),
    ("2027-01-14T09:30+09:00", "2027-01-15T00:00Z",
     ("2027-01-14T00:30", "2027-01-15T00:00")),
])
@pytest.mark.parametrize("tab", ["summary", "detail"])
def test_pickers_show_the_range_the_report_used(admin, tab, start, end, shown):
    page = admin.get(f"/reporting/{tab}?generated=1&start={start.replace('+', '%2B')}"
                     f"&end={end}").get_data(as_text=True)
    assert picker_values(page) == {"start": shown[0], "end": shown[1]}


def test_a_value_the_pickers_show_is_kept_as_typed(admin):
    page = admin.get("/reporting/summary?generated=1&start=2027-01-14T08:00:30"
                     "&end=2027-01-15T08:00").get_data(as_text=True)
    assert picker_values(page) == {"start": "2027-01-14T08:00:30", "end": "2027-01-15T08:00"}
