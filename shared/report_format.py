"""Report output formats (SPEC §2): CSV, JSON lines and an aligned text table.

Rules:
- Detail CSV columns and header, in this order: time,category,action,result,queue_id,
  connection_id,client_ip,sender,recipients,subject,size,rule,info. `time` is ISO 8601 with
  the offset of the `timezone` setting; `recipients` are `;`-separated.
- Summary CSV: section,item,count.
- Spreadsheet formula injection: a CSV cell starting with `=`, `+`, `-` or `@` gets a leading
  `'` (SPEC §2, STYLE §1 Console). JSON and text are not spreadsheets and are not escaped.
- Everything here is a generator over rows: nothing holds a whole report in memory (the text
  table measures its column widths on the first `TEXT_SAMPLE_ROWS` rows only).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Iterable, Iterator

from shared.report import DetailRow, Summary
from shared.report_time import iso_local

__all__ = ["DETAIL_COLUMNS", "SUMMARY_COLUMNS", "escape_cell", "detail_record",
           "summary_records", "csv_lines", "json_lines", "text_lines", "FORMULA_PREFIXES",
           "data_text", "summary_text"]

DETAIL_COLUMNS = ("time", "category", "action", "result", "queue_id", "connection_id",
                  "client_ip", "sender", "recipients", "subject", "size", "rule", "info")
SUMMARY_COLUMNS = ("section", "item", "count")
FORMULA_PREFIXES = ("=", "+", "-", "@")
_FORMULA_FIRST = frozenset(FORMULA_PREFIXES)
TEXT_SAMPLE_ROWS = 200
TEXT_MAX_WIDTH = 48


def escape_cell(value) -> str:
    """A CSV cell: None → empty; text starting with = + - @ gets a leading '."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _escaped_cells(record: dict, columns: tuple[str, ...]) -> list:
    """`escape_cell` over a row, inlined: it runs for every cell of a multi-million-row export."""
    cells = []
    for column in columns:
        value = record[column]
        if value is None:
            cells.append("")
        elif type(value) is str:
            cells.append("'" + value if value[:1] in _FORMULA_FIRST else value)
        else:
            cells.append(escape_cell(value))
    return cells


def data_text(data: str | None) -> str:
    """The action-specific `data` JSON as `key=value; …` (for events whose writer left
    `info` empty)."""
    if not data:
        return ""
    try:
        values = json.loads(data)
    except ValueError:
        return data
    if not isinstance(values, dict):
        return str(values)
    return "; ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
                     for k, v in values.items() if v not in (None, "", [], {}))


def detail_record(row: DetailRow, zone: dt.tzinfo) -> dict:
    """One detail-report row with the CSV column names as keys (typed: size is an int)."""
    return {
        "time": iso_local(row.time, zone), "category": row.category, "action": row.action,
        "result": row.result, "queue_id": row.queue_id, "connection_id": row.connection_id,
        "client_ip": row.client_ip, "sender": row.sender, "recipients": row.recipients,
        "subject": row.subject, "size": row.size, "rule": row.rule,
        "info": row.info if row.info else (data_text(row.data) or None),
    }


def summary_records(summary: Summary) -> Iterator[dict]:
    """`section,item,count` rows; premium and infection end with their Total row."""
    for section in summary.sections:
        for item, count in section.rows:
            yield {"section": section.key, "item": item, "count": count}
        if section.key in ("premium", "infection"):
            yield {"section": section.key, "item": "Total", "count": section.total}


def csv_lines(columns: tuple[str, ...], records: Iterable[dict],
              rows_per_chunk: int = 1) -> Iterator[str]:
    """The header line, then the CSV lines of the records (RFC 4180 quoting, CRLF line
    ends). With `rows_per_chunk` > 1 each string yielded holds up to that many lines, which
    is what a stream to a socket or a pipe wants."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(columns)
    yield take()
    pending = 0
    for record in records:
        writer.writerow(_escaped_cells(record, columns))
        pending += 1
        if pending >= rows_per_chunk:
            yield take()
            pending = 0
    if pending:
        yield take()


def json_lines(records: Iterable[dict]) -> Iterator[str]:
    for record in records:
        yield json.dumps(record, ensure_ascii=False) + "\n"


def _cell(value) -> str:
    return "" if value is None else str(value).replace("\n", " ").replace("\r", " ")


def text_lines(columns: tuple[str, ...], records: Iterable[dict],
               numeric: tuple[str, ...] = ("size", "count")) -> Iterator[str]:
    """An aligned table: widths measured on the first rows (capped), later rows that are
    wider simply run on, so the table streams."""
    iterator = iter(records)
    sample = []
    for record in iterator:
        sample.append(record)
        if len(sample) >= TEXT_SAMPLE_ROWS:
            break
    widths = {c: len(c) for c in columns}
    for record in sample:
        for c in columns:
            widths[c] = min(TEXT_MAX_WIDTH, max(widths[c], len(_cell(record[c]))))

    def line(values: dict) -> str:
        cells = [(_cell(values[c]).rjust(widths[c]) if c in numeric
                  else _cell(values[c]).ljust(widths[c])) for c in columns]
        return "  ".join(cells).rstrip() + "\n"

    yield line({c: c for c in columns})
    yield "  ".join("-" * widths[c] for c in columns) + "\n"
    for record in sample:
        yield line(record)
    for record in iterator:
        yield line(record)


def summary_text(summary: Summary) -> Iterator[str]:
    """The summary as the guide prints it: a heading per section, item and count aligned."""
    yield f"Summary Report  {summary.range.label()}\n"
    width = max([len(item) for s in summary.sections for item, _ in s.rows] + [24])
    for section in summary.sections:
        yield f"\n{section.title}\n{'-' * (width + 12)}\n"
        if section.key in ("viruses", "subjects_blocked", "attachments_deleted"):
            if not section.rows:
                yield "(none)\n"
                continue
            yield f"{'Name'.ljust(width)}  {'Count':>10}\n"
        for item, count in section.rows:
            yield f"{item.ljust(width)}  {count:>10}\n"
        if section.total is not None and (section.key in ("premium", "infection")
                                          or section.rows):
            yield f"{'Total'.ljust(width)}  {section.total:>10}\n"
