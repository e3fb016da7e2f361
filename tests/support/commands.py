"""Rows of the `commands` table for tests: a request written as the console or the CLI
writes one, and its state and result read back (core/control.py carries them out)."""

from __future__ import annotations

import json
import time

from shared import db

__all__ = ["ask", "command_row"]


def ask(home, kind, args: dict, *, requested_by: str = "cli", state: str | None = None) -> int:
    """Write a request of `kind` with `args`; `state` other than the table's default
    ('pending') stands for one a stopped core left behind. Returns its id."""
    columns, values = "created_at, kind, args, requested_by", [time.time(), str(kind),
                                                               json.dumps(args), requested_by]
    if state is not None:
        columns, values = columns + ", state", values + [state]
    conn = db.connect(home.db)
    try:
        conn.execute(f"INSERT INTO commands ({columns}) VALUES "
                     f"({', '.join('?' * len(values))})", values)
        return conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    finally:
        conn.close()


def command_row(home, command_id: int):
    """The request's (state, result)."""
    conn = db.connect(home.db)
    try:
        return conn.execute("SELECT state, result FROM commands WHERE id = ?",
                            (command_id,)).fetchone()
    finally:
        conn.close()
