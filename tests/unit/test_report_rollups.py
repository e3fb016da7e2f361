"""Migration 0002's hourly roll-ups stay equal to the events they summarise — through inserts
by the event writer, the retention purge and the backfill of an existing database — and the
`logging.local` / `logging.retention_days` rules (shared.retention, console.jobs)."""

from __future__ import annotations

import random
import threading
import time

import pytest

from shared import db
from shared.clock import FakeClock
from shared.events import Action, Event, EventWriter
from shared.retention import (STATUS_ACTIONS, keeps_locally, local_storage_filter,
                              purge_events)

T0 = 1_800_000_000.0
DAY = 86_400
ITEM_ACTIONS = [Action.FILE_DELETED, Action.VIRUS_LOGGED, Action.SUBJECT_BLOCKED,
                Action.ATTACHMENT_DELETED, Action.ENCRYPTED_CONTAINER]


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "mailmoat.db"
    conn = db.connect(path)
    db.migrate(conn)
    yield path, conn
    conn.close()


def rollups(conn) -> dict:
    return {(r[0], r[1], r[2], r[3]): (r[4], r[5]) for r in conn.execute(
        "SELECT hour, action, item, generated, events, bytes FROM event_hourly")}


def recomputed(conn) -> dict:
    return {(r[0], r[1], r[2], r[3]): (r[4], r[5]) for r in conn.execute(
        "SELECT hour, action, item, generated, COUNT(*), COALESCE(SUM(size), 0) "
        "FROM event_facts GROUP BY 1, 2, 3, 4")}


def random_events(writer: EventWriter, clock: FakeClock, n: int, span: float, seed=7):
    rnd = random.Random(seed)
    actions = [Action.ACCEPTED, Action.DELIVERED, Action.REJECTED, *ITEM_ACTIONS]
    for _ in range(n):
        clock.value = T0 + rnd.random() * span
        action = rnd.choice(actions)
        data = {}
        if action in (Action.FILE_DELETED, Action.VIRUS_LOGGED):
            data = {"virus": rnd.choice(["EICAR", "W32.Foo"])}
        elif action is Action.SUBJECT_BLOCKED:
            data = {"pattern": rnd.choice(["*hot*", "cheap*"])}
        elif action is Action.ATTACHMENT_DELETED:
            data = {"file": rnd.choice(["a.exe", "b.scr"])}
        if action is Action.DELIVERED and rnd.random() < 0.2:
            data = {"generated": True}
        writer.record(action, size=rnd.randint(1, 5000), data=data,
                      result=rnd.choice(["deleted", "logged", None]),
                      info=rnd.choice([None, "fallback name"]))
    writer.flush()


def test_rollups_equal_the_events_after_inserts_and_deletes(database):
    path, conn = database
    clock = FakeClock(T0)
    writer = EventWriter(path, "core", clock)
    random_events(writer, clock, 3000, 3 * DAY)
    assert rollups(conn) == recomputed(conn)
    assert sum(v[0] for v in rollups(conn).values()) == 3000
    result = purge_events(conn, T0 + 3 * DAY, 2, batch=250, pause=0)
    assert result.deleted > 0 and result.batches > 1
    assert rollups(conn) == recomputed(conn)
    assert conn.execute("SELECT COUNT(*) FROM event_hourly WHERE events <= 0").fetchone()[0] == 0
    writer.close()


def test_migration_backfills_rollups_of_an_existing_database(tmp_path):
    """A database at schema 1 with events gets correct roll-ups when 0002 is applied."""
    path = tmp_path / "old.db"
    conn = db.connect(path)
    first = db.known_migrations()[0]
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT "
                 "NULL, applied_at REAL NOT NULL)")
    for statement in db._statements(first.sql):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_migrations VALUES (1, ?, 0)", (first.name,))
    clock = FakeClock(T0)
    writer = EventWriter(path, "core", clock)
    random_events(writer, clock, 500, DAY)
    writer.close()
    applied = db.migrate(conn)
    assert [m.name for m in applied][:1] == ["event_rollups"]
    assert rollups(conn) == recomputed(conn)
    assert sum(v[0] for v in rollups(conn).values()) == 500
    conn.close()


def test_purge_keeps_recent_events_and_is_idempotent(database):
    path, conn = database
    clock = FakeClock(T0)
    writer = EventWriter(path, "core", clock)
    for day in range(40):
        clock.value = T0 + day * DAY
        writer.record(Action.ACCEPTED, size=100)
    writer.flush()
    now = T0 + 39 * DAY + 10
    result = purge_events(conn, now, 30, batch=7, pause=0)
    assert result.deleted == 10 and result.cutoff == now - 30 * DAY
    times = [r[0] for r in conn.execute("SELECT time FROM events ORDER BY time")]
    assert len(times) == 30 and min(times) >= now - 30 * DAY
    assert purge_events(conn, now, 30).deleted == 0
    assert purge_events(conn, now + 400 * DAY, 0).deleted == 0     # 0 = keep for ever
    assert rollups(conn) == recomputed(conn)
    writer.close()


@pytest.mark.slow          # several seconds: `make test-slow` (CI runs it)
def test_purge_never_holds_the_writer_off_for_long(database):
    """The core's writer keeps committing while a large purge runs."""
    path, conn = database
    clock = FakeClock(T0)
    writer = EventWriter(path, "core", clock)
    for i in range(20_000):
        clock.value = T0 + i
        writer.record(Action.DELIVERED, size=1)
    writer.flush()
    clock.value = T0 + 100 * DAY
    stop = threading.Event()
    waits: list[float] = []

    def keep_writing():
        while not stop.is_set():
            started = time.monotonic()
            writer.record(Action.ACCEPTED)
            writer.flush()
            waits.append(time.monotonic() - started)

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        result = purge_events(conn, T0 + 100 * DAY, 30)
    finally:
        stop.set()
        thread.join()
    assert result.deleted == 20_000 and result.batches >= 10
    assert result.longest_batch_seconds < 0.5
    assert max(waits) < 2.0 and len(waits) > 3
    assert rollups(conn) == recomputed(conn)
    writer.close()


def test_local_logging_off_keeps_only_what_other_parts_read(database):
    path, conn = database
    values = {"logging.local": False, "forwarding.enabled": False}
    writer = EventWriter(path, "core", FakeClock(T0), keep=local_storage_filter(lambda: values))
    for action in Action:
        writer.record(action)
    writer.flush()
    stored = {r[0] for r in conn.execute("SELECT action FROM events")}
    assert STATUS_ACTIONS <= {Action(a) for a in stored}
    assert "logon" in stored and "service_started" in stored        # alerts read these
    assert "connection_from" not in stored and "file_deleted" not in stored
    assert writer.skipped == len(Action) - len(stored)
    values["forwarding.enabled"] = True                              # SIEM needs its subset
    writer.record(Action.FILE_DELETED)
    values["logging.local"] = True
    writer.record(Action.CONNECTION_FROM)
    writer.flush()
    stored = {r[0] for r in conn.execute("SELECT action FROM events")}
    assert {"file_deleted", "connection_from"} <= stored
    writer.close()


def test_keep_filter_keeps_events_when_settings_cannot_be_read():
    def broken():
        raise RuntimeError("database is locked")
    assert local_storage_filter(broken)(Event(Action.CONNECTION_FROM, T0)) is True
    assert keeps_locally({"logging.local": True}, Event(Action.CONNECTION_FROM, T0))


def test_purge_job_records_its_outcome(tmp_path):
    from console.jobs import purge_old_events
    from tests.support.core import make_home, set_settings
    home = make_home(tmp_path / "home")
    set_settings(home, logging__retention_days=7)
    clock = FakeClock(T0)
    writer = EventWriter(home.db, "console", clock)
    for day in range(10):
        clock.value = T0 + day * DAY
        writer.record(Action.ACCEPTED)
    writer.flush()
    result = purge_old_events(home, writer, clock)
    writer.flush()
    assert result.deleted == 2
    conn = db.connect(home.db)
    try:
        row = conn.execute("SELECT result, rule, info FROM events WHERE action = ?",
                           (Action.EVENTS_PURGED.value,)).fetchone()
    finally:
        conn.close()
    assert tuple(row) == ("succeeded", "logging.retention_days",
                          "2 event(s) older than 7 days deleted")
    writer.close()


def test_a_purge_of_every_event_keeps_the_newest_so_ids_never_go_back(database):
    """After a day without events every row is past the retention; were they all deleted,
    SQLite would number the next event from 1 again, below the alert engine's id cursor."""
    path, conn = database
    clock = FakeClock(T0)
    writer = EventWriter(path, "core", clock)
    for i in range(5):
        clock.value = T0 + i
        writer.record(Action.DELIVERED, size=1)
    writer.flush()
    cursor = conn.execute("SELECT MAX(id) FROM events").fetchone()[0]
    assert purge_events(conn, T0 + 10 * DAY, 2, batch=2, pause=0).deleted == 4
    clock.value = T0 + 10 * DAY
    writer.record(Action.DELIVERED, size=1)
    writer.flush()
    assert conn.execute("SELECT COUNT(*) FROM events WHERE id > ?", (cursor,)).fetchone()[0] == 1
    assert rollups(conn) == recomputed(conn)
    writer.close()
