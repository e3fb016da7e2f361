"""Where the alert engine begins on a first start (core/notify.py; 8e57ffe, review19 r3 T3,
D2). With no cursor file the engine began at the newest event id when it loaded, after the
start's recovery had written the scan_error of an entry set aside in corrupt/, so whether
that was alerted depended on when the event writer flushed. The core reads where to begin
(`first_start_cursor`) before its recovery; and only on a first start: with a cursor the
database is not read there (every start read it, so a locked or unreadable database
stopped any start at that point).

The real engine on a temp data home's database; its mail goes into a list.
"""

from __future__ import annotations

import sqlite3

import pytest

from core.notify import AlertEngine, first_start_cursor
from shared.events import Action
from tests.integration.test_alerts import _console_event, _NoEvents
from tests.support.core import make_home, stored_settings


def _home(tmp_path):
    return make_home(tmp_path, admin__emails=["a@local.test"], alerts__config_change=True)


async def _engine(home, sent: list, first_cursor: int | None = None) -> AlertEngine:
    """An alert engine of `home` whose mails go into `sent`, its cursor loaded as at start."""
    async def submit(sender, recipients, data, kind):
        sent.append(data)
        return "Q"

    engine = AlertEngine(home.db, home.run, lambda: stored_settings(home), _NoEvents(), submit,
                         lambda: "mm.test", first_cursor=first_cursor)
    await engine.load()
    return engine


@pytest.mark.trio
async def test_a_first_start_alerts_what_came_after_its_first_cursor_before_it_loaded(
        tmp_path):
    home = _home(tmp_path)
    _console_event(home, Action.OBJECT_MODIFIED, info="history")    # before this start
    first = first_start_cursor(home.db, home.run)                   # no cursor file yet
    assert first is not None and first > 0
    _console_event(home, Action.OBJECT_MODIFIED, info="this start")  # its recovery, say
    sent: list = []
    engine = await _engine(home, sent, first_cursor=first)
    assert await engine.poll_once() == ["Q"]
    [mail] = sent
    assert b"Configuration Change" in mail and b"this start" in mail and b"history" not in mail


@pytest.mark.trio
async def test_without_a_first_cursor_a_first_start_begins_at_the_newest_event(tmp_path):
    home = _home(tmp_path)
    _console_event(home, Action.OBJECT_MODIFIED, info="before the engine loaded")
    sent: list = []
    engine = await _engine(home, sent)
    assert await engine.poll_once() == [] and sent == []


@pytest.mark.trio
async def test_a_start_with_a_cursor_does_not_read_the_database_for_it(tmp_path):
    home = _home(tmp_path)
    engine = await _engine(home, [])
    _console_event(home, Action.OBJECT_MODIFIED, info="seen")
    await engine.poll_once()                    # the cursor file is written
    assert (home.run / "alerts.cursor").exists()
    not_a_database = tmp_path / "not-a-database"
    not_a_database.write_bytes(b"this is no SQLite file, " * 100)
    assert first_start_cursor(not_a_database, home.run) is None
    with pytest.raises(sqlite3.DatabaseError):  # a first start reads it
        first_start_cursor(not_a_database, tmp_path / "a-new-run-directory")
