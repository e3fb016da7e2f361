"""Reporting services: run the shared report service (shared.report) for the page, and write
CSV files (guide ch. 7 "Write to CSV": `MAILMOATyyyymmddhhmm.csv`, downloaded and also saved in
the data home's logs directory).

Rules:
- No SQL here beyond calling shared.report; the CLI runs the same queries.
- A CSV is UTF-8 with a byte-order mark (BYTE_ORDER_MARK, for Excel), download and saved
  copy alike; the CLI's CSV has none.
- A CSV streams: rows go to the browser and to `logs/<name>.part` as they are read, and the
  file is renamed into place when the last row is written. A download the browser abandons
  leaves no partial file behind. The name has minutes only, so a second CSV of the same minute
  is saved as `<name>-2.csv` (and so on), never over the first (`_reserved`).
- The saved copies are bounded, since any report-only administrator can click Write to CSV
  (each copy can be large): after a copy is saved only the MAX_SAVED_CSV newest are kept;
  the console's daily retention job deletes copies older than `logging.retention_days`
  (`purge_saved_csv`, console.jobs); and while the data home's file system is under the
  core's low-disk threshold no copy is saved (the download is still answered), so a report
  never takes the space the spool needs.
- Times typed in the pickers are read in the `timezone` setting (shared.report_time).
- The pickers start out at the last 24 hours up to the *next* whole minute: the range ends
  just before To and the pickers show minutes, so a To of the current minute would leave out
  what happened in it (a change saved a moment ago). Both tabs use `default_picker_values`.
- The detail page shows what CSV shows, with `details` cut to `PAGE_DETAIL_CHARS` per fact
  and `PAGE_DETAIL_PARTS` facts (Write to CSV has them whole), and `info` as its writer wrote
  it (CSV's `info` falls back to the data, which the page shows under Details instead).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from markupsafe import Markup

from console.context import console_context, request_db, settings
from console.reporting.charts import (Buckets, bucket_counts, bucket_layout,
                                      disposition_chart_svg, top_chart_svg)
from shared import db as shared_db
from shared.report import (DetailFilter, DetailPage, DetailRow, Summary, action_filter,
                           detail_page, disposition_counts, iter_detail, summarise, top_items)
from shared.report_format import (DETAIL_COLUMNS, SUMMARY_COLUMNS, csv_lines, data_user,
                                  detail_parts, detail_record, event_data, summary_records)
from shared.report_time import (DEFAULT_SPAN_SECONDS, BadTime, ReportRange, csv_file_name,
                                make_range)
from shared.disk import LOW_DISK_FRACTION
from shared.retention import kept_without_local_logging

__all__ = ["RangeError", "report_range", "SummaryView", "summary_view", "DetailView",
           "detail_view", "csv_download", "local_logging_notice", "PAGE_ROWS", "MAX_SAVED_CSV",
           "saved_csv_files", "purge_saved_csv",
           "picker_value", "detail_filter", "default_picker_values", "PAGE_DETAIL_CHARS",
           "PAGE_DETAIL_PARTS", "BYTE_ORDER_MARK"]

PAGE_ROWS = 100
PAGE_DETAIL_CHARS = 200     # one fact of the Details cell (one changed setting, one data key)
PAGE_DETAIL_PARTS = 12      # facts shown per row; "and N more" after them
TOP_ROWS = 10
CHUNK_BYTES = 64 * 1024
CHUNK_ROWS = 500
MAX_SAVED_CSV = 100         # copies of Write to CSV kept in logs/; the oldest go first
# Before the header of the file Write to CSV gives (and saves): Excel reads a .csv opened by
# double-click in the ANSI code page unless it starts with the UTF-8 byte-order mark, and
# shows non-ASCII subjects as mojibake. It is outside every cell, so the formula escaping of
# the cells (shared.report_format) is untouched. `mailmoat report --format csv` has none:
# scripts read it.
BYTE_ORDER_MARK = "\ufeff"
# What Write to CSV saves (shared.report_time.csv_file_name, `_reserved`), finished or not.
_SAVED_CSV_NAME = re.compile(r"MAILMOAT\d{12}(?:-\d+)?\.csv(?:\.part)?")

log = logging.getLogger("mailmoat.console.reporting")


class RangeError(ValueError):
    """A From/To value the report cannot use; the message says which and why."""


def picker_value(unix: float) -> str:
    """A time for the datetime-local pickers, in the `timezone` setting."""
    import datetime as dt
    from shared.report_time import zone_of
    return dt.datetime.fromtimestamp(unix, zone_of(settings()["timezone"])).strftime(
        "%Y-%m-%dT%H:%M")


def default_picker_values(now: float) -> tuple[str, str]:
    """(From, To) the pickers start with: the 24 hours up to the next whole minute, so the
    report includes everything that happened up to now."""
    end = (now // 60 + 1) * 60
    return picker_value(end - DEFAULT_SPAN_SECONDS), picker_value(end)


def report_range(start: str | None, end: str | None) -> ReportRange:
    try:
        return make_range(start or None, end or None, settings()["timezone"],
                          console_context().clock.now())
    except BadTime as exc:
        field_name = {"from": "From", "to": "To"}.get(exc.option, "From/To")
        raise RangeError(f"{field_name}: {exc}") from None


def local_logging_notice() -> str | None:
    """What the page says while `logging.local` is off (guide §3 "Configuring logging")."""
    values = settings()
    if values["logging.local"]:
        return None
    kept = ", ".join(sorted(a.value for a in kept_without_local_logging(values)))
    return ("Local logging is off (Configuration › Logging): Mailmoat stores no events for "
            "reports, so reports over that time are empty — except for the few events other "
            f"parts of Mailmoat still need (Status chart, alerts, SIEM forwarding): {kept}.")


@dataclass
class SummaryView:
    summary: Summary
    buckets: Buckets
    disposition_chart: Markup
    top_charts: list[Markup] = field(default_factory=list)
    bucket_labels: list[str] = field(default_factory=list)


def summary_view(rng: ReportRange) -> SummaryView:
    conn = request_db()
    summary = summarise(conn, rng, premium=bool(settings()["premium.enabled"]))
    starts = bucket_layout(rng).starts
    buckets = bucket_counts(disposition_counts(conn, rng, starts=starts), rng)
    zone = rng.zone
    tops = [top_chart_svg("top-viruses", "Top viruses", top_items(summary, "viruses", TOP_ROWS),
                          "#b3261e"),
            top_chart_svg("top-subjects", "Top blocked subjects",
                          top_items(summary, "subjects_blocked", TOP_ROWS), "#d98200"),
            top_chart_svg("top-attachments", "Top deleted attachments",
                          top_items(summary, "attachments_deleted", TOP_ROWS), "#6a3d9a")]
    return SummaryView(summary, buckets, disposition_chart_svg(buckets, zone),
                       [t for t in tops if t],
                       [buckets.label(i, zone) for i in range(len(buckets.starts))])


@dataclass
class DetailView:
    filter: DetailFilter
    page: DetailPage
    records: list[dict]
    first_number: int


def detail_filter(rng: ReportRange, actions: list[str], search: str | None,
                  without_whitelisted: bool = False) -> DetailFilter:
    return DetailFilter(rng, action_filter(actions), (search or "").strip(),
                        bool(without_whitelisted))


def page_record(row: DetailRow, zone) -> dict:
    """A detail row as the page shows it: the CSV record, with `info` as written and the
    details as a list of (shortened) facts plus how many more there are."""
    record = detail_record(row, zone)
    values = event_data(row.data)
    parts = detail_parts(row.action, values, limit=PAGE_DETAIL_CHARS, info=row.info)
    record["info"] = row.info or None
    record["user"] = data_user(values)
    record["detail_parts"] = parts[:PAGE_DETAIL_PARTS]
    record["more_parts"] = max(0, len(parts) - PAGE_DETAIL_PARTS)
    record["cut_short"] = record["more_parts"] > 0 or \
        parts != detail_parts(row.action, values, info=row.info)
    return record


def detail_view(flt: DetailFilter, *, after: str | None, before: str | None,
                first_number: int) -> DetailView:
    page = detail_page(request_db(), flt, size=PAGE_ROWS, after=after, before=before)
    zone = flt.range.zone
    return DetailView(flt, page, [page_record(row, zone) for row in page.rows],
                      max(1, first_number))


# --- CSV ------------------------------------------------------------------------------------

def _chunks(lines: Iterable[str]) -> Iterator[str]:
    pending: list[str] = []
    size = 0
    for line in lines:
        pending.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield "".join(pending)
            pending, size = [], 0
    if pending:
        yield "".join(pending)


def _reserved(target: Path) -> tuple[Path, Path]:
    """(the name to save as, its .part file, created): `target`, or `<stem>-2.csv`, -3...
    when a saved file or one being written has it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        name = target if n == 1 else target.with_name(f"{target.stem}-{n}{target.suffix}")
        partial = name.with_name(name.name + ".part")
        if name.exists():
            continue
        try:                        # O_EXCL: two writes of one minute never share a file
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        return name, partial
    raise AssertionError("unreachable")


def _saved_copies(logs: Path, partial: bool) -> list[tuple[float, str, Path]]:
    try:
        entries = list(os.scandir(logs))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        if _SAVED_CSV_NAME.fullmatch(entry.name) and (partial or entry.name.endswith(".csv")):
            try:
                found.append((entry.stat().st_mtime, entry.name, Path(entry.path)))
            except FileNotFoundError:       # deleted meanwhile
                continue
    return sorted(found)


def saved_csv_files(logs: Path) -> list[Path]:
    """The saved CSV copies in `logs` (not the ones being written), oldest first."""
    return [path for _mtime, _name, path in _saved_copies(logs, partial=False)]


def _remove(paths: Iterable[Path]) -> int:
    removed = 0
    for path in paths:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def purge_saved_csv(logs: Path, cutoff: float) -> int:
    """Delete the saved CSV copies last written before `cutoff` (UTC unix seconds), and the
    .part files of writes that old (left by a console that stopped mid-write); returns how
    many files were deleted."""
    return _remove(path for mtime, _name, path in _saved_copies(logs, partial=True)
                   if mtime < cutoff)


def _tee_to_file(chunks: Iterable[str], target: Path) -> Iterator[bytes]:
    """Yield each chunk as UTF-8 and write it to `target` or the next free name (through a
    .part file renamed at the end; removed when the stream is abandoned or fails); then keep
    only the MAX_SAVED_CSV newest copies."""
    target, partial = _reserved(target)
    done = False
    try:
        with open(partial, "w", encoding="utf-8", newline="") as handle:
            for chunk in chunks:
                handle.write(chunk)
                yield chunk.encode("utf-8")
        os.replace(partial, target)
        done = True
    finally:
        if not done:
            partial.unlink(missing_ok=True)
    saved = saved_csv_files(target.parent)
    _remove(saved[:max(0, len(saved) - MAX_SAVED_CSV)])


def _encoded(chunks: Iterable[str]) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk.encode("utf-8")


def csv_download(kind: str, rng: ReportRange, flt: DetailFilter | None = None
                 ) -> tuple[str, Iterator[bytes]]:
    """(file name, byte stream) of the summary or detail CSV; the stream also saves the file
    in the logs directory, unless its disk is low. The stream opens its own database
    connection, so it outlives the request's."""
    ctx = console_context()
    values = settings()
    name = csv_file_name(ctx.clock.now(), rng.zone)
    target = ctx.home.logs / name
    premium = bool(values["premium.enabled"])

    def lines() -> Iterator[str]:
        conn = shared_db.connect(ctx.home.db)
        try:
            if kind == "summary":
                yield from csv_lines(SUMMARY_COLUMNS,
                                     summary_records(summarise(conn, rng, premium=premium)))
            else:
                zone = rng.zone
                yield from csv_lines(DETAIL_COLUMNS, (detail_record(row, zone)
                                                      for row in iter_detail(conn, flt)),
                                     rows_per_chunk=CHUNK_ROWS)
        finally:
            conn.close()

    target.parent.mkdir(parents=True, exist_ok=True)
    chunks = _chunks(itertools.chain((BYTE_ORDER_MARK,), lines()))
    free = ctx.disk_free(target.parent)
    if free < LOW_DISK_FRACTION:
        log.warning("Write to CSV: %s not saved in %s, which has %.1f%% free disk space",
                    name, target.parent, free * 100)
        return name, _encoded(chunks)
    return name, _tee_to_file(chunks, target)
