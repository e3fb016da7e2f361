"""Report ranges at the DST edges (shared/report_time.py; reports18 C3): a local time the
clocks skip is refused by name — it was read as an hour later and the administrator saw
"the start of the range must be before its end" for 02:30–03:00 — and a label in the hour
repeated in autumn shows its offset, so the two hours no longer read the same."""

from __future__ import annotations

import pytest

from shared.report_time import BadTime, local_label, make_range, parse_time, zone_of

NEW_YORK = "America/New_York"


def test_a_time_the_clocks_skip_is_refused_by_name():
    with pytest.raises(BadTime) as refused:
        make_range("2026-03-08T02:30", "2026-03-08T03:00", NEW_YORK, 0)
    assert refused.value.option == "from"
    assert str(refused.value).startswith("02:30 does not exist in America/New_York on "
                                         "2026-03-08")
    with pytest.raises(BadTime) as refused:
        make_range("2026-03-08T01:00", "2026-03-08T02:00:30", NEW_YORK, 0)
    assert refused.value.option == "to" and str(refused.value).startswith("02:00:30 ")


def test_times_around_the_gap_and_with_an_offset_are_read_as_before():
    zone = zone_of(NEW_YORK)
    assert parse_time("2026-03-08T03:00", zone) - parse_time("2026-03-08T01:59", zone) == 60
    assert parse_time("2026-03-08T02:30-05:00", zone) == parse_time("2026-03-08T03:30", zone)
    # a bare date whose midnight is skipped starts at the day's first instant
    santiago = zone_of("America/Santiago")
    assert local_label(parse_time("2026-09-06", santiago), santiago) == "2026-09-06 01:00"


def test_labels_in_the_repeated_hour_show_their_offset():
    rng = make_range("2026-11-01T01:30-04:00", "2026-11-01T01:30-05:00", NEW_YORK, 0)
    assert rng.label() == ("2026-11-01 01:30 -04:00 – 2026-11-01 01:30 -05:00 "
                           "America/New_York")
    day = make_range("2026-11-01", "2026-11-01", NEW_YORK, 0)
    assert day.label() == "2026-11-01 00:00 – 2026-11-02 00:00 America/New_York"


def test_the_charts_hour_rows_in_the_repeated_hour_differ():
    from console.reporting.charts import bucket_layout
    day = make_range("2026-11-01", "2026-11-01", NEW_YORK, 0)
    buckets = bucket_layout(day)
    labels = [buckets.label(i, day.zone) for i in range(len(buckets.starts))]
    assert len(labels) == len(set(labels)) == 25
    assert "2026-11-01 01:00 -04:00" in labels and "2026-11-01 01:00 -05:00" in labels
    assert "2026-11-01 02:00" in labels


@pytest.mark.parametrize("name", ["Europe", "America/", 5, "../etc/passwd", "No/Such_Zone"])
def test_a_name_that_is_no_zone_reads_as_utc(name):
    assert zone_of(name).key == "UTC"
