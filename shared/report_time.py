"""Report time ranges: ISO 8601 in, UTC unix seconds out, and back again for display.

Rules (SPEC §2 "report … --from/--to"):
- A date or date-time without an offset is read in the `timezone` setting; one with an offset
  (or `Z`) means exactly that instant. Storage and queries are UTC unix seconds.
- A range is half-open, [start, end). A bare date as the end means the end of that day, i.e.
  the next local midnight; as the start it means that day's midnight.
- A local date-time that does not exist (inside the hour skipped when the clocks go forward)
  is refused by name ("02:30 does not exist in America/New_York on 2026-03-08"): read with
  fold=0 it became a later instant than it says (03:30), and a range up to 03:00 was refused
  as "the start of the range must be before its end" (reports18 C3). A bare date whose
  midnight is skipped means the day's first instant. One that exists twice (the hour repeated
  in autumn) is read as `zoneinfo` does with fold=0: the first of the two; an offset picks
  the other. Labels (`local_label`) add the offset to a time of that repeated hour, so the
  two are told apart.
- Dates are accepted from FIRST_YEAR to LAST_YEAR; one outside is a BadTime like any bad
  date (a bare end date of 9999-12-31 used to overflow into an HTTP 500 and a traceback).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass

from shared.shown_text import quoted

__all__ = ["ReportRange", "BadTime", "zone_of", "parse_time", "make_range", "iso_local",
           "local_label",
           "csv_file_name", "DEFAULT_SPAN_SECONDS", "FIRST_YEAR", "LAST_YEAR"]

DEFAULT_SPAN_SECONDS = 24 * 3600
# No event is older than unix time 0; LAST_YEAR stays a year below Python's datetime.MAXYEAR
# so that a bare end date's next midnight, and any range shown in any time zone, still exist.
FIRST_YEAR, LAST_YEAR = 1970, 9998
_BARE_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BadTime(ValueError):
    """A --from/--to value that is not an ISO 8601 date or date-time, or an empty range.
    `option` names the input at fault: "from", "to" or "range"."""

    def __init__(self, message: str, option: str = "range"):
        super().__init__(message)
        self.option = option


def zone_of(name: str | None) -> zoneinfo.ZoneInfo:
    """The zone named by the `timezone` setting (UTC when it is missing or unknown)."""
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    # a directory of the zone database ("Europe") raises IsADirectoryError, a value that is
    # no text TypeError: unknown too (consolefix18b: the console's jobs and pages crashed)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        return zoneinfo.ZoneInfo("UTC")


def parse_time(text: str, zone: dt.tzinfo, *, end: bool = False) -> float:
    """UTC unix seconds for an ISO 8601 date or date-time; raises BadTime.

    `end=True`: a bare date means the end of that day (the next midnight in `zone`).
    """
    text = (text or "").strip()
    if not text:
        raise BadTime("empty date")
    if _BARE_DATE.match(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise BadTime(f"{quoted(text, 100)} is not a valid date") from None
        _check_year(text, day.year)
        if end:
            day += dt.timedelta(days=1)
        return dt.datetime.combine(day, dt.time(0), tzinfo=zone).timestamp()
    try:
        moment = dt.datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise BadTime(f"{quoted(text, 100)} is not an ISO 8601 date or date-time "
                      "(e.g. 2026-11-27 or 2026-11-27T13:00)") from None
    _check_year(text, moment.year)
    if moment.tzinfo is None:
        local = moment
        moment = moment.replace(tzinfo=zone)
        if dt.datetime.fromtimestamp(moment.timestamp(), zone).replace(tzinfo=None) != local:
            shown = f"{local:%H:%M:%S}" if local.second or local.microsecond \
                else f"{local:%H:%M}"
            raise BadTime(f"{shown} does not exist in {getattr(zone, 'key', zone)} on "
                          f"{local:%Y-%m-%d}: the clocks skip it; give a later time or "
                          f"an offset")
    return moment.timestamp()


def _check_year(text: str, year: int) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise BadTime(f"{quoted(text, 100)} is out of range: reports cover the years "
                      f"{FIRST_YEAR} to "
                      f"{LAST_YEAR}")


@dataclass(frozen=True)
class ReportRange:
    """[start, end) in UTC unix seconds, shown in `timezone`."""

    start: float
    end: float
    timezone: str = "UTC"

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zone_of(self.timezone)

    def label(self) -> str:
        """`2026-11-19 00:00 – 2026-11-20 00:00 Europe/Berlin` (the guide's report heading);
        a time in the hour repeated in autumn with its offset (`local_label`)."""
        zone = self.zone
        return (f"{local_label(self.start, zone)} – {local_label(self.end, zone)} "
                f"{self.timezone}")


def make_range(start_text: str | None, end_text: str | None, timezone: str,
               now: float) -> ReportRange:
    """The range of `--from`/`--to` (or the console's pickers); defaults: the last 24 hours.

    Raises BadTime for a bad value or when the start is not before the end.
    """
    zone = zone_of(timezone)
    try:
        end = parse_time(end_text, zone, end=True) if end_text else now
    except BadTime as exc:
        raise BadTime(str(exc), "to") from None
    try:
        start = parse_time(start_text, zone) if start_text else end - DEFAULT_SPAN_SECONDS
    except BadTime as exc:
        raise BadTime(str(exc), "from") from None
    if start >= end:
        raise BadTime("the start of the range must be before its end")
    return ReportRange(start, end, timezone)


def iso_local(unix: float, zone: dt.tzinfo) -> str:
    """`2026-11-27T13:00:05+01:00`: ISO 8601 with offset, whole seconds (the CSV time)."""
    return dt.datetime.fromtimestamp(unix, zone).isoformat(timespec="seconds")


def local_label(unix: float, zone: dt.tzinfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """`unix` in `zone` as `fmt`, with the offset added (`2026-11-01 01:30 -04:00`) when that
    local time occurs twice, in the hour repeated when the clocks go back (module rules):
    without it the two hours read the same."""
    local = dt.datetime.fromtimestamp(unix, zone)
    text = local.strftime(fmt)
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        offset = local.strftime("%z")
        text += f" {offset[:3]}:{offset[3:]}"
    return text


def csv_file_name(now: float, zone: dt.tzinfo) -> str:
    """`MAILMOATyyyymmddhhmm.csv` for the moment of creation (guide ch. 7, SPEC §7)."""
    return f"MAILMOAT{dt.datetime.fromtimestamp(now, zone):%Y%m%d%H%M}.csv"
