"""`mailmoat report summary|detail` (SPEC §2): the same queries as the console's Reporting page.

    mailmoat report summary|detail --from T --to T [--action A ...] [--search S]
                                   [--format text|csv|json] [--home DIR]

Times are ISO 8601 dates or date-times, read in the `timezone` setting unless they carry an
offset; --from defaults to 24 hours before --to, --to to now; a bare date in --to means the end
of that day. Output streams to stdout (a month of events never sits in memory). Bad input
exits 2 with one line on stderr.
"""

from __future__ import annotations

import sys

from shared.cli import EXIT_BAD_INPUT, EXIT_OK, CommandFailed, register

__all__: list[str] = []

CHUNK_ROWS = 500   # rows per write to stdout


def _setup(parser) -> None:
    parser.add_argument("kind", choices=("summary", "detail"))
    parser.add_argument("--from", dest="start", metavar="T",
                        help="start (ISO 8601; default 24 hours before --to)")
    parser.add_argument("--to", dest="end", metavar="T", help="end (ISO 8601; default now)")
    parser.add_argument("--action", action="append", default=[], metavar="A",
                        help="detail only: an action identifier (repeatable); none = all")
    parser.add_argument("--search", default="", metavar="S",
                        help="detail only: one term, case-insensitive, over all text fields")
    parser.add_argument("--format", choices=("text", "csv", "json"), default="text")


def _run(args) -> int:
    from shared.home import open_db
    from shared.paths import resolve_home
    from shared.report import DetailFilter, action_filter, iter_detail, summarise
    from shared.report_format import (DETAIL_COLUMNS, SUMMARY_COLUMNS, csv_lines, detail_record,
                                      json_lines, summary_records, summary_text, text_lines)
    from shared.report_time import BadTime, make_range
    from shared.settings_store import load
    import time

    if args.kind == "summary" and (args.action or args.search):
        raise CommandFailed("--action and --search apply to the detail report only",
                            EXIT_BAD_INPUT)
    conn = open_db(resolve_home(args.home))
    try:
        values = load(conn)
        try:
            rng = make_range(args.start, args.end, values["timezone"], time.time())
        except BadTime as exc:
            option = {"from": "--from", "to": "--to"}.get(exc.option, "--from/--to")
            raise CommandFailed(f"{option}: {exc}", EXIT_BAD_INPUT) from None
        if args.kind == "summary":
            summary = summarise(conn, rng, premium=bool(values["premium.enabled"]))
            if args.format == "text":
                lines = summary_text(summary)
            elif args.format == "csv":
                lines = csv_lines(SUMMARY_COLUMNS, summary_records(summary))
            else:
                lines = json_lines(summary_records(summary))
        else:
            try:
                actions = action_filter(args.action)
            except ValueError as exc:
                raise CommandFailed(f"--action: {exc}", EXIT_BAD_INPUT) from None
            flt = DetailFilter(rng, actions, args.search.strip())
            zone = rng.zone
            records = (detail_record(row, zone) for row in iter_detail(conn, flt))
            if args.format == "text":
                lines = text_lines(DETAIL_COLUMNS, records)
            elif args.format == "csv":
                lines = csv_lines(DETAIL_COLUMNS, records, rows_per_chunk=CHUNK_ROWS)
            else:
                lines = json_lines(records)
        out = sys.stdout
        if args.format == "csv" and hasattr(out, "reconfigure"):
            # csv_lines ends rows with CRLF (RFC 4180); do not let text mode translate them.
            out.reconfigure(newline="")
        for line in lines:              # a reader that stops early (`| head`): shared/cli.py
            out.write(line)
        out.flush()
    finally:
        conn.close()
    return EXIT_OK


register("report", "summary and detail reports (text, CSV or JSON lines)", _setup, _run)
