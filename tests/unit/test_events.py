"""shared/events.py: the catalogue and the batching event writer."""

import json
import threading
import time

import pytest
import trio

from shared import db
from shared.clock import FakeClock
from shared.events import CATEGORY_OF, SIEM_ACTIONS, Action, Category, Event, EventWriter

# SPEC §6, copied as written there (the guide's Tables 7-5 to 7-9).
SPEC_ACTIONS = {
    "system": "logon, logoff, liveupdate, definitions_updated, object_modified, service_started, "
              "service_start_failed, service_stopped, reordering_started, reordering_stopped, "
              # "system (more)"
              "unauthorized_access, low_disk, low_memory, http_protocol_violation, outbreak, "
              "alert_sent, service_start_improper",
    "smtp": "connection_from, connected_to, disconnected, connection_closed, protocol_violation, "
            "rejected",
    "premium": "spam, suspected_spam, reputation_spam, spam_quarantined",
    "message": "accepted, dropped, forwarded, bounced, delivery_failed, delivered, completed, "
               "delivery_suppressed, held, quarantined",
    "blocking": "malformed, virus_logged, file_repaired, file_deleted, subject_blocked, "
                "scan_error, sender_blocked, attachment_deleted, spam_list_block, heuristic_spam, "
                "mass_mailer_cleanup, content_rule_violation, spam_rule_violation, "
                "encrypted_container, container_limit",
}


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "mailmoat.db"
    connection = db.connect(path)
    db.migrate(connection)
    connection.close()
    return path


@pytest.fixture
def writer(db_path):
    w = EventWriter(db_path, "core", FakeClock())
    yield w
    w.close()


def rows(db_path):
    connection = db.connect(db_path, readonly=True)
    try:
        return connection.execute("SELECT * FROM events ORDER BY id").fetchall()
    finally:
        connection.close()


@pytest.fixture
def gated_connect(monkeypatch):
    """Hold the writer thread before it opens its connection until `gate.set()`; every
    connection it opens records its statements in `statements`."""
    gate = threading.Event()
    statements: list[str] = []
    real_connect = db.connect

    def connect(path, **kw):
        assert gate.wait(10), "test never opened the gate"
        connection = real_connect(path, **kw)
        connection.set_trace_callback(statements.append)
        return connection

    monkeypatch.setattr(db, "connect", connect)
    return gate, statements


# --- the catalogue -------------------------------------------------------------------------------

def test_every_action_has_one_category():
    assert set(CATEGORY_OF) == set(Action)
    for action in Action:
        assert isinstance(CATEGORY_OF[action], Category)
        assert Event(action, 0.0).category is CATEGORY_OF[action]


@pytest.mark.parametrize("category", sorted(SPEC_ACTIONS))
def test_spec_actions_exist_in_their_category(category):
    names = [name.strip() for name in SPEC_ACTIONS[category].split(",")]
    missing = [name for name in names if name not in {action.value for action in Action}]
    assert missing == []
    assert {name: CATEGORY_OF[Action(name)].value for name in names} == {
        name: category for name in names}


def test_siem_subset_is_from_the_catalogue():
    assert SIEM_ACTIONS <= set(Action)


def test_event_row_matches_the_report_columns():
    event = Event(Action.DELIVERED, 1_800_000_000.25, result="ok", queue_id="Q1",
                  connection_id="C1", client_ip="192.0.2.1", sender="a@example.org",
                  recipients=("b@example.com", "c@example.com"), subject="Hi", size=123,
                  rule="routing.local", info="250 ok", data={"relay": "mx", "attempt": 1})
    assert event.row("core") == (
        1_800_000_000.25, "message", "delivered", "ok", "Q1", "C1", "192.0.2.1", "a@example.org",
        "b@example.com;c@example.com", "Hi", 123, "routing.local", "250 ok",
        '{"attempt": 1, "relay": "mx"}', "core")
    empty = Event(Action.LOGON, 1.0).row("console")
    assert empty[8] is None and empty[13] is None


# --- the writer ----------------------------------------------------------------------------------

def test_record_writes_every_field(writer, db_path):
    event = writer.record(Action.FILE_DELETED, queue_id="Q9", recipients=["x@example.com"],
                          info="evil.exe", data={"file": "evil.exe"})
    writer.flush()
    (row,) = rows(db_path)
    assert row["time"] == 1_800_000_000.0 == event.time
    assert (row["category"], row["action"], row["process"]) == ("blocking", "file_deleted",
                                                                "core")
    assert row["recipients"] == "x@example.com"
    assert json.loads(row["data"]) == {"file": "evil.exe"}
    assert writer.written == 1 and writer.lost == 0


def test_many_events_fewer_transactions(db_path, gated_connect):
    gate, statements = gated_connect
    w = EventWriter(db_path, "core")
    try:
        count = 2 * EventWriter.MAX_BATCH + 7
        for i in range(count):
            w.record(Action.ACCEPTED, queue_id=f"Q{i}")
        gate.set()  # the whole backlog is queued before the writer starts
        w.flush()
        # (the rollup trigger makes SQLite report the statement again for each row)
        inserts = list(dict.fromkeys(s for s in statements if s.startswith("INSERT INTO events")))
        # one statement (one transaction) per batch: 500 + 500 + 7
        assert [s.count("'accepted'") for s in inserts] == [500, 500, 7]
        assert w.written == count
        assert [row["queue_id"] for row in rows(db_path)] == [f"Q{i}" for i in range(count)]
    finally:
        gate.set()
        w.close()


def test_order_preserved_single_thread(writer, db_path):
    for i in range(300):
        writer.record(Action.CONNECTION_FROM, info=str(i))
    writer.flush()
    result = rows(db_path)
    assert [int(row["info"]) for row in result] == list(range(300))
    ids = [row["id"] for row in result]
    assert ids == sorted(ids)


def test_order_preserved_across_threads(writer, db_path):
    lock = threading.Lock()
    counter = iter(range(10_000))

    def produce():
        for _ in range(250):
            with lock:  # the emit order is the order of the counter
                writer.record(Action.DELIVERED, info=str(next(counter)))

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.flush()
    assert [int(row["info"]) for row in rows(db_path)] == list(range(1000))


def test_survives_a_busy_database(db_path, monkeypatch):
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 20)
    monkeypatch.setattr(EventWriter, "RETRY_SECONDS", 0.01)
    blocker = db.connect(db_path)
    w = EventWriter(db_path, "core")
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        for i in range(50):
            w.record(Action.ACCEPTED, info=str(i))
        deadline = time.monotonic() + 10
        while w.busy_retries < 2:  # held past the writer's busy timeout, twice
            assert time.monotonic() < deadline, "the writer never hit the lock"
            time.sleep(0.01)
        assert w.written == 0
        blocker.execute("COMMIT")
        w.flush()
        assert [int(row["info"]) for row in rows(db_path)] == list(range(50))
        assert w.written == 50 and w.lost == 0 and w.busy_retries >= 2
    finally:
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
        blocker.close()
        w.close()


def test_emit_never_blocks_and_counts_overflow(db_path, gated_connect, monkeypatch):
    gate, _ = gated_connect
    monkeypatch.setattr(EventWriter, "QUEUE_LIMIT", 5)
    w = EventWriter(db_path, "core")
    try:
        started = time.monotonic()
        for i in range(20):
            w.record(Action.ACCEPTED, info=str(i))
        assert time.monotonic() - started < 1
        assert w.lost == 15
        gate.set()
        w.flush()
        assert [row["info"] for row in rows(db_path)] == ["0", "1", "2", "3", "4"]
    finally:
        gate.set()
        w.close()


def test_events_lost_are_said_in_one_line_at_close(db_path, gated_connect, monkeypatch,
                                                   capsys):
    """diskfull21 A1: events lost were counted and never said. Past QUEUE_LIMIT here; a
    full disk at close: tests/integration/test_full_disk_stop.py."""
    gate, _ = gated_connect
    monkeypatch.setattr(EventWriter, "QUEUE_LIMIT", 3)
    w = EventWriter(db_path, "console")
    try:
        for i in range(5):
            w.record(Action.LOGON, info=str(i))
        w.record(Action.LOGOFF)
    finally:
        gate.set()
        w.close()
    assert w.lost == w.overflowed == 3 and w.lost_full == 0
    assert capsys.readouterr().err.splitlines() == [
        "mailmoat console: 3 events could not be written: 3 came while 3 were waiting to "
        "be written already; they are lost"]
    w.close()                               # said once
    assert capsys.readouterr().err == ""


def test_the_lost_line_names_the_process_as_its_owner_says(db_path, gated_connect,
                                                           monkeypatch, capsys):
    """review21a C1: a core's SMTP listener processes write as "core", and each said its
    own loss as "mailmoat core: …", so a reader took any one line for the total."""
    gate, _ = gated_connect
    monkeypatch.setattr(EventWriter, "QUEUE_LIMIT", 1)
    w = EventWriter(db_path, "core", said_as="core (SMTP listener 1)")
    try:
        w.record(Action.REJECTED)
        w.record(Action.REJECTED)
    finally:
        gate.set()
        w.close()
    assert w.lost == w.overflowed == 1
    assert capsys.readouterr().err.splitlines() == [
        "mailmoat core (SMTP listener 1): 1 event could not be written: 1 came while 1 were "
        "waiting to be written already; they are lost"]
    assert [row["process"] for row in rows(db_path)] == ["core"]


def test_a_writer_that_lost_nothing_says_nothing_at_close(writer, db_path, capsys):
    writer.record(Action.LOGON)
    writer.close()
    assert writer.lost == 0 and capsys.readouterr().err == ""


def test_close_writes_pending_events(db_path):
    w = EventWriter(db_path, "cli")
    for _ in range(10):
        w.record(Action.OBJECT_MODIFIED)
    w.close()
    assert len(rows(db_path)) == 10
    w.close()  # twice is harmless


def test_flush_without_events_returns(writer):
    writer.flush()


def test_disabled_writer_writes_nothing(db_path):
    w = EventWriter(db_path, "core", enabled=False)
    w.record(Action.LOGON)
    w.flush()
    w.close()
    assert rows(db_path) == []


async def test_aflush_from_trio(writer, db_path):
    with trio.fail_after(10):
        for i in range(20):
            writer.record(Action.SPAM, info=str(i))
        await writer.aflush()
    assert len(rows(db_path)) == 20
