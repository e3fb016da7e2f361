"""Report output formats (SPEC §2): CSV, JSON lines and an aligned text table.

Rules:
- Detail CSV columns and header, exactly SPEC §2's, in this order: time,category,action,
  result,queue_id,connection_id,client_ip,sender,recipients,subject,size,rule,info. `time` is
  ISO 8601 with the offset of the `timezone` setting; `recipients` are `;`-separated.
- `info` is "the rest" (SPEC §2: virus name, file name, score, user, reason): what the event's
  writer wrote, then the user the event is about and the details of its action-specific
  `data` (SPEC §6) — an object_modified event's changes as `key: old → new`, values as JSON,
  so a report says who changed what (a long list's change as what was added and removed,
  `LIST_WHOLE_CHARS`). A writer that wrote nothing gets the data as `key=value; …`. CSV,
  JSON and text carry it whole; only a page shortens the details (`detail_parts(...,
  limit=)`), which it shows in User and Details columns of its own.
  A fact the writer's text already states in so many words (`score 100` in "Message is
  considered to be spam (score 100, spam definitions …)"), or that is the whole text (a
  reordering's next hop), is not repeated in the details, on the page or in a file: each
  fact once.
- Summary CSV: section,item,count.
- Spreadsheet formula injection: a CSV cell starting with `=`, `+`, `-` or `@` gets a leading
  `'` (SPEC §2, STYLE §1 Console). JSON and text are not spreadsheets and are not escaped.
- CSV and text show bidi control characters as marks (shared.shown_text): a file name
  "invoice\u202efdp.scr" must not read "invoicercs.pdf" in a report. Text keeps one event
  to a line, so that grep, head and wc read it and a value cannot forge a row: the lines of
  a multi-line value are joined with "; " (a virus finding's "File: a.exe; Virus: …"), and
  other control characters are shown as escapes (`\x1b`). JSON is for programs and keeps
  the text as it is.
- Text tables pad by display width (`display_width`: a CJK character takes two columns, a
  combining mark none), so the columns after a Japanese subject line up.
- Everything here is a generator over rows: nothing holds a whole report in memory (the text
  table measures its column widths on the first `TEXT_SAMPLE_ROWS` rows only).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import re
import unicodedata
from collections import Counter
from typing import Iterable, Iterator

from shared.report import DetailRow, Summary
from shared.report_time import iso_local
from shared.settings_types import loads_stored
from shared.shown_text import one_line, visible_bidi

__all__ = ["DETAIL_COLUMNS", "SUMMARY_COLUMNS", "escape_cell", "detail_record",
           "summary_records", "csv_lines", "json_lines", "text_lines", "FORMULA_PREFIXES",
           "data_text", "summary_text", "event_data", "data_user", "detail_parts",
           "DETAILS_SEPARATOR", "display_width", "padded"]

DETAIL_COLUMNS = ("time", "category", "action", "result", "queue_id", "connection_id",
                  "client_ip", "sender", "recipients", "subject", "size", "rule", "info")
SUMMARY_COLUMNS = ("section", "item", "count")
FORMULA_PREFIXES = ("=", "+", "-", "@")
_FORMULA_FIRST = frozenset(FORMULA_PREFIXES)
TEXT_SAMPLE_ROWS = 200
TEXT_MAX_WIDTH = 48


def escape_cell(value) -> str:
    """A CSV cell: None → empty; text starting with = + - @ gets a leading '; bidi
    controls shown as marks (shared.shown_text: a spreadsheet would render the disguise)."""
    if value is None:
        return ""
    text = visible_bidi(str(value))
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _escaped_cells(record: dict, columns: tuple[str, ...]) -> list:
    """`escape_cell` over a row, inlined: it runs for every cell of a multi-million-row export."""
    cells = []
    for column in columns:
        value = record[column]
        if value is None:
            cells.append("")
        elif type(value) is str:
            value = value if value.isascii() else visible_bidi(value)
            cells.append("'" + value if value[:1] in _FORMULA_FIRST else value)
        else:
            cells.append(escape_cell(value))
    return cells


def data_text(data: str | None) -> str:
    """The action-specific `data` JSON as `key=value; …` (for events whose writer left
    `info` empty)."""
    return _values_text(event_data(data))


def _values_text(values) -> str:
    if not isinstance(values, dict):
        return str(values) if values not in (None, "", [], {}) else ""
    return "; ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
                     for k, v in values.items() if v not in (None, "", [], {}))


# --- user and details (SPEC §6 "action-specific data (virus, file, score, rule, reason, user)")

# The `data` keys naming the console user an event is about: logon, logoff, object_modified
# and unauthorized_access write `user`; failed_logon writes the `account` that was tried.
USER_KEYS = ("user", "account")
# Keys that `details` leaves out because another column shows them already: the user, and an
# object_modified event's page (its title is the event's `info`).
_SHOWN_ELSEWHERE = {"object_modified": frozenset({"page"})}
# An object_modified event's `changes` come first (`key: old → new`), then, for a command
# asked of the core, these keys in this order; the other keys follow in name order.
_COMMAND_KEYS = ("command", "args")
DETAILS_SEPARATOR = "; "
CHANGE_ARROW = " → "
ELLIPSIS = "…"


def event_data(data: str | None):
    """The stored `data` JSON as Python values; {} when there is none, the text itself when
    it is not JSON (an older or hand-made row). The one place every report output reads an
    event's data: a lone UTF-16 surrogate an older release wrote (its object_modified event
    for a setting it then accepted, "\\ud800" in ASCII JSON) reads as U+FFFD, as the setting
    itself does (settings_types `loads_stored`), since no UTF-8 page, file or terminal can
    carry it (upgrade16 finding 2)."""
    if not data:
        return {}
    try:
        return loads_stored(data)
    except ValueError:
        return data


def data_user(values) -> str | None:
    """The console user an event is about (`data.user`, else `data.account`), or None."""
    if isinstance(values, dict):
        for key in USER_KEYS:
            user = values.get(key)
            if isinstance(user, str) and user:
                return user
    return None


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _plain(value) -> str:
    """A data value as `data_text` writes it: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else _json(value)


def _shorten(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[:max(limit - 1, 1)] + ELLIPSIS


# A changed list whose `old → new` is longer than this is shown in a file too as what was
# added and removed, in full (tester25a B1: one entry added to a 2,000-entry whitelist made a
# 66 KB report line of the two lists, in which the change could not be seen)
LIST_WHOLE_CHARS = 2000


def _beyond(these: list, others: list) -> list:
    """The entries of `these` (in their order) that `others` does not hold as many times: a
    repeat dropped from a list is a removal, not a reordering (review25b R2)."""
    left = Counter(map(_json, others))
    out = []
    for value in these:
        key = _json(value)
        if left[key]:
            left[key] -= 1
        else:
            out.append(value)
    return out


def _list_difference(old: list, new: list, limit: int | None) -> str:
    """`added [...], removed [...]` of two lists (by value, order kept), for a line that
    cannot show both lists whole; each half cut to fit `limit` (a page cell), or whole."""
    added = _beyond(new, old)
    removed = _beyond(old, new)
    if not added and not removed:           # the same entries, as often: their order changed
        return f"the same {len(new)} entries in another order"
    half = None if limit is None else max(limit // 2, 16)
    return (f"added {_shorten(_json(added), half)}, removed {_shorten(_json(removed), half)} "
            f"({len(old)} → {len(new)} entries)")


def _change(key: str, change, limit: int | None) -> str:
    if not (isinstance(change, list) and len(change) == 2):
        return _shorten(f"{key}: {_json(change)}", limit)
    old, new = change
    text = f"{key}: {_json(old)}{CHANGE_ARROW}{_json(new)}"
    if isinstance(old, list) and isinstance(new, list) \
            and len(text) > (LIST_WHOLE_CHARS if limit is None else limit):
        text = f"{key}: {_list_difference(old, new, limit and limit - len(key) - 2)}"
    return _shorten(text, limit)


def _flat(prefix: str, value, out: list[tuple[str, object]]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flat(f"{prefix}.{key}", value[key], out)
    elif value not in (None, "", [], {}):
        out.append((prefix, value))


def _fact(key: str, value, limit: int | None, parts: list[str]) -> None:
    """`key=value` onto `parts` (nothing for an empty value; objects flattened). Text and
    numbers take the short path: this runs for every key of every row of an export."""
    kind = type(value)
    if kind is str:
        if value:
            parts.append(_shorten(f"{key}={value}", limit))
    elif kind is bool:
        parts.append(f"{key}=true" if value else f"{key}=false")
    elif kind is int:
        parts.append(_shorten(f"{key}={value}", limit))
    elif kind is dict:
        flat: list[tuple[str, object]] = []
        _flat(key, value, flat)
        parts += [_shorten(f"{name}={_plain(item)}", limit) for name, item in flat]
    elif value not in (None, [], {}):
        parts.append(_shorten(f"{key}={_plain(value)}", limit))


def _stated(info: str | None, key: str, value) -> bool:
    """Does the writer's text state this data fact already (module rules): as `key value`
    or `key=value` in whole words, or as the whole text (a reordering's info is its next
    hop; outbound19 B1 saw "relay:…; messages=4; next_hop=relay:…")? `score 1` is not
    stated by "score 100", nor `rule x` by "spam_rule x". Only text and numbers: a flag or
    a list reads otherwise in a sentence."""
    if not info or type(value) not in (str, int, float) or value == "":
        return False
    if info == value:
        return True
    if f"{key} {value}" not in info and f"{key}={value}" not in info:
        return False                # the common case, without a regular expression
    return re.search(rf"(?<!\w){re.escape(key)}[ =]{re.escape(str(value))}(?!\w|\.\d)",
                     info) is not None


def detail_parts(action: str, values, *, limit: int | None = None,
                 info: str | None = None) -> list[str]:
    """The facts of an event's `data` that no other column shows, one string each: every
    changed setting as `key: old → new` (values as JSON; secrets are already "***" in the
    event), then `key=value` for the rest (nested objects as `args.domains=…`). `info` is
    the writer's text: a fact it states already is left out (module rules).

    `limit` shortens each fact to that many characters (a page cell); a list too long for
    it is shown as what was added and removed. None (CSV, JSON, text): everything, whole.
    """
    if type(values) is not dict:
        return [_shorten(_plain(values), limit)] if values not in (None, "", [], {}) else []
    user_key = None
    for key in USER_KEYS:
        user = values.get(key)
        if isinstance(user, str) and user:
            user_key = key
            break
    elsewhere = _SHOWN_ELSEWHERE.get(action, ())
    parts: list[str] = []
    changes = values.get("changes")
    if isinstance(changes, dict):
        parts += [_change(key, changes[key], limit) for key in sorted(changes)]
    elif changes not in (None, "", [], {}):
        parts.append(_shorten(f"changes={_plain(changes)}", limit))
    for key in _COMMAND_KEYS:
        if key in values and not _stated(info, key, values[key]):
            _fact(key, values[key], limit, parts)
    for key in sorted(values):
        if key != user_key and key != "changes" and key not in _COMMAND_KEYS \
                and key not in elsewhere and not _stated(info, key, values[key]):
            _fact(key, values[key], limit, parts)
    return parts


# Most rows' data repeats (a next hop, a status, a flag), so its columns are worked out once
# per distinct small data string; larger ones (a saved change) are rarer and not kept.
MEMO_DATA_CHARS = 512
MEMO_ENTRIES = 4096


def _info(action: str, info: str | None, data: str) -> str | None:
    """The `info` cell (module rules): the writer's text, the user, the data's details."""
    values = event_data(data)
    if not info:
        return _values_text(values) or None
    user = data_user(values)
    return DETAILS_SEPARATOR.join([info, *([f"user={user}"] if user and user != info else []),
                                   *detail_parts(action, values, info=info)])


_memo_info = functools.lru_cache(maxsize=MEMO_ENTRIES)(_info)


def detail_record(row: DetailRow, zone: dt.tzinfo) -> dict:
    """One detail-report row with the CSV column names as keys (typed: size is an int).

    `info` is the writer's text with the user and the data's details (module rules).
    """
    data = row.data
    if not data:
        info = row.info
    elif len(data) <= MEMO_DATA_CHARS:
        info = _memo_info(row.action, row.info, data)
    else:
        info = _info(row.action, row.info, data)
    return {
        "time": iso_local(row.time, zone), "category": row.category, "action": row.action,
        "result": row.result, "queue_id": row.queue_id, "connection_id": row.connection_id,
        "client_ip": row.client_ip, "sender": row.sender, "recipients": row.recipients,
        "subject": row.subject, "size": row.size, "rule": row.rule,
        "info": info,
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


# A line break in a value (a virus finding's "File: …\nVirus: …\n" info, a hand-written
# text), the blanks around it, and the separator of the details that may follow it.
_LINE_BREAK = re.compile(r"[ \t]*(?:\r\n|[\n\r\v\f\x85\u2028\u2029])\s*(?:;\s*)?")


def _cell(value) -> str:
    """A text-table cell: the lines of a multi-line value joined with DETAILS_SEPARATOR,
    as the details after them are, then one_line (module rules)."""
    if value is None:
        return ""
    text = str(value)
    if _LINE_BREAK.search(text):
        text = DETAILS_SEPARATOR.join(part for part in _LINE_BREAK.split(text.strip()) if part)
    return one_line(text)


def display_width(text: str) -> int:
    """The columns `text` takes in a terminal (UAX #11): two for a wide or full-width
    character (CJK, Hangul, full-width forms), none for a combining mark or a format
    character, nor for a Hangul vowel or final consonant jamo (the decomposed syllables of a
    macOS file name: a terminal draws them into the leading consonant's two columns), one
    for the rest. Padding by characters pushed every column after a CJK subject right by one
    per character (tester i18n19 C1). The one measure of terminal columns: the text
    reports and `mailmoat queue list` (review19 r4 D1, C4)."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.category(ch) in _ZERO_WIDTH or _is_trailing_jamo(ch)
               else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


_ZERO_WIDTH = frozenset({"Mn", "Me", "Cf"})


def _is_trailing_jamo(ch: str) -> bool:
    """A Hangul medial vowel or final consonant jamo (U+1160-11FF, U+D7B0-D7FF): letters
    (Lo) of width N to UAX #11, drawn in no column of their own."""
    return "\u1160" <= ch <= "\u11ff" or "\ud7b0" <= ch <= "\ud7ff"


def padded(text: str, width: int, right: bool = False) -> str:
    """`text` padded with spaces to `width` columns (`display_width`), on the left when
    `right`."""
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


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
            widths[c] = min(TEXT_MAX_WIDTH, max(widths[c], display_width(_cell(record[c]))))

    def line(values: dict) -> str:
        cells = [padded(_cell(values[c]), widths[c], c in numeric) for c in columns]
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
    width = max([display_width(_cell(item)) for s in summary.sections for item, _ in s.rows]
                + [24])
    for section in summary.sections:
        yield f"\n{section.title}\n{'-' * (width + 12)}\n"
        if section.key in ("viruses", "subjects_blocked", "attachments_deleted"):
            if not section.rows:
                yield "(none)\n"
                continue
            yield f"{'Name'.ljust(width)}  {'Count':>10}\n"
        for item, count in section.rows:
            yield f"{padded(_cell(item), width)}  {count:>10}\n"
        if section.total is not None and (section.key in ("premium", "infection")
                                          or section.rows):
            yield f"{'Total'.ljust(width)}  {section.total:>10}\n"
