"""shared/spool.py: layout, durability path, failure injection and recovery."""

import hashlib
import json
import os
import stat
import tracemalloc

import pytest

from shared import spool as spool_mod
from shared.spool import (CORRUPT, ENVELOPE_FILE, INCOMING, MESSAGE_FILE, QUEUES, STEPS,
                          Envelope, EnvelopeError, Recipient, Spool, new_queue_id)

CLOCK = lambda: 1_700_000_000.5  # noqa: E731  an injected wall clock


class Crash(Exception):
    """Stands for the process dying at a failure-injection step."""


def crash_at(step, occurrence=1):
    seen = {"n": 0}

    def injector(name):
        if name == step:
            seen["n"] += 1
            if seen["n"] == occurrence:
                raise Crash(step)
    return injector


def make_envelope(queue_id, **fields):
    return Envelope.new(queue_id, "alice@example.org", ["bob@example.com", "carol@example.net"],
                        clock=CLOCK, **fields)


def body_for(queue_id):
    return (b"Received: from x\r\nSubject: " + queue_id.encode() + b"\r\n\r\nhello\r\n") * 3


def accept(sp, queue="fast", count=1):
    """The core's accept path for *count* messages finishing together; returns their ids."""
    handles = []
    for _ in range(count):
        queue_id = new_queue_id()
        incoming = sp.open_incoming(queue_id)
        incoming.write(body_for(queue_id))
        handles.append(incoming.prepare(make_envelope(queue_id)))
    sp.commit(handles, queue)
    return [h.queue_id for h in handles]


def assert_whole(sp, queue, queue_id):
    envelope = sp.read_envelope(queue, queue_id)
    assert envelope.queue_id == queue_id
    with sp.open_message(queue, queue_id) as f:
        assert f.read() == body_for(queue_id)
    assert envelope.size == len(body_for(queue_id))


def everything(sp):
    """Every entry in every queue directory, dot-names included."""
    return {q: sorted(os.listdir(sp.root / q)) for q in QUEUES}


@pytest.fixture
def sp(tmp_path):
    return Spool(tmp_path / "spool")


# --- layout, ids, envelope ---------------------------------------------------

def test_creates_every_queue_directory_with_mode_0700(tmp_path):
    sp = Spool(tmp_path / "spool")
    for queue in QUEUES:
        assert stat.S_IMODE((sp.root / queue).stat().st_mode) == 0o700
    assert stat.S_IMODE(sp.root.stat().st_mode) == 0o700


def test_message_files_are_0600_and_directories_0700(sp):
    [queue_id] = accept(sp)
    directory = sp.root / "fast" / queue_id
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in (MESSAGE_FILE, ENVELOPE_FILE):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600


def test_queue_ids_are_unique_and_sorted_over_100k_calls():
    ids = [new_queue_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 12 and set(i) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for i in ids)


def test_queue_ids_sort_by_time_and_survive_a_clock_step_back():
    early = new_queue_id(clock_ns=lambda: 2_000_000_000 * 10**9)
    later = new_queue_id(clock_ns=lambda: 2_000_000_001 * 10**9)
    stepped_back = new_queue_id(clock_ns=lambda: 1_000_000_000 * 10**9)
    assert early < later < stepped_back


def test_envelope_round_trip_keeps_unknown_keys(sp):
    [queue_id] = accept(sp)
    path = sp.root / "fast" / queue_id / ENVELOPE_FILE
    raw = json.loads(path.read_bytes())
    raw["future_field"] = {"x": [1, 2]}
    raw["recipients"][0]["future_rcpt_field"] = "dsn-notify"
    path.write_text(json.dumps(raw))

    envelope = sp.read_envelope("fast", queue_id)
    envelope.attempts = 2
    envelope.recipients[0].status = "deferred"
    envelope.meta["note"] = "ü"
    sp.write_envelope("fast", envelope)

    again = json.loads(path.read_bytes())
    assert again["future_field"] == {"x": [1, 2]}
    assert again["recipients"][0]["future_rcpt_field"] == "dsn-notify"
    assert again["attempts"] == 2 and again["recipients"][0]["status"] == "deferred"
    assert sp.read_envelope("fast", queue_id) == envelope
    assert not (path.parent / (ENVELOPE_FILE + ".tmp")).exists()


def test_envelope_fields_and_injected_clock():
    envelope = make_envelope("ABC", is_bounce=True, next_attempt_at=12.5)
    assert envelope.received_at == CLOCK()
    assert envelope.recipients == [Recipient("bob@example.com"), Recipient("carol@example.net")]
    copy = Envelope.from_json(envelope.to_json())
    assert copy == envelope and copy.is_bounce and copy.next_attempt_at == 12.5
    assert json.loads(envelope.to_json())["format"] == 1


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("queue_id"),
    lambda d: d.update(size="12"),
    lambda d: d.update(smtputf8=1),
    lambda d: d.update(attempts=True),
    lambda d: d.update(body="BINARY"),
    lambda d: d.update(recipients=[{"address": "a@b", "status": "lost"}]),
    lambda d: d.update(recipients=["a@b"]),
])
def test_invalid_envelope_raises_envelope_error(mutate):
    raw = make_envelope("ABC").to_dict()
    mutate(raw)
    with pytest.raises(EnvelopeError):
        Envelope.from_dict(raw)
    with pytest.raises(EnvelopeError):
        Envelope.from_json(b"{not json")


def test_bad_queue_or_id_is_refused(sp):
    for bad in ("../x", ".trash-x", "a/b", ""):
        with pytest.raises(ValueError):
            sp.message_path("fast", bad)
    with pytest.raises(ValueError):
        sp.message_path("nowhere", "ABC")
    with pytest.raises(ValueError):
        sp.move("ABC", "incoming", "fast")


# --- accepting ---------------------------------------------------------------

def test_streams_20mb_in_64k_chunks_without_holding_it(sp):
    chunk_octets, total_octets = 64 * 1024, 20 * 1024 * 1024
    queue_id = new_queue_id()
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        incoming = sp.open_incoming(queue_id)
        for n in range(total_octets // chunk_octets):
            chunk = bytes([n % 251]) * chunk_octets
            digest.update(chunk)
            incoming.write(chunk)
        sp.commit([incoming.prepare(make_envelope(queue_id))])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024
    assert sp.read_envelope("fast", queue_id).size == total_octets
    with sp.open_message("fast", queue_id) as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == digest.hexdigest()


def test_group_commit_of_10_messages_fsyncs_each_directory_once(sp, monkeypatch):
    synced = []
    real = spool_mod._fsync_dir
    monkeypatch.setattr(spool_mod, "_fsync_dir", lambda p: (synced.append(str(p)), real(p)))
    handles = []
    for _ in range(10):
        queue_id = new_queue_id()
        incoming = sp.open_incoming(queue_id)
        incoming.write(body_for(queue_id))
        handles.append(incoming.prepare(make_envelope(queue_id)))
    synced.clear()
    sp.commit(handles)
    assert synced == [str(sp.root / "fast"), str(sp.root / INCOMING)]
    assert list(sp.list("fast")) == [h.queue_id for h in handles]
    assert os.listdir(sp.root / INCOMING) == []
    for h in handles:
        assert_whole(sp, "fast", h.queue_id)


def test_abort_removes_the_incoming_message(sp):
    queue_id = new_queue_id()
    incoming = sp.open_incoming(queue_id)
    incoming.write(b"partial")
    incoming.abort()
    incoming.abort()
    assert os.listdir(sp.root / INCOMING) == []
    with pytest.raises(RuntimeError):
        incoming.write(b"more")


def test_exception_inside_with_block_aborts(sp):
    with pytest.raises(ZeroDivisionError):
        with sp.open_incoming(new_queue_id()) as incoming:
            incoming.write(b"x")
            1 / 0
    assert os.listdir(sp.root / INCOMING) == []


def test_same_id_twice_is_refused(sp):
    queue_id = new_queue_id()
    sp.open_incoming(queue_id)
    with pytest.raises(FileExistsError):
        sp.open_incoming(queue_id)


def test_prepare_refuses_an_envelope_for_another_id(sp):
    incoming = sp.open_incoming(new_queue_id())
    with pytest.raises(ValueError):
        incoming.prepare(make_envelope("OTHER"))


def _prepare_unsynced(sp, count):
    handles = []
    for _ in range(count):
        queue_id = new_queue_id()
        incoming = sp.open_incoming(queue_id)
        incoming.write(body_for(queue_id))
        handles.append(incoming.prepare(make_envelope(queue_id), sync=False))
    return handles


def test_batch_prepared_without_sync_is_made_durable_by_one_syncfs(sp, monkeypatch):
    if spool_mod._SYNCFS is None:
        pytest.skip("no syncfs(2) on this platform: the fsync fallback is tested below")
    calls = []
    real = spool_mod._SYNCFS
    monkeypatch.setattr(spool_mod, "_SYNCFS", lambda fd: calls.append(os.readlink(
        f"/proc/self/fd/{fd}")) or real(fd))
    monkeypatch.setattr(os, "fsync", lambda fd: pytest.fail("no per-file fsync expected"))
    monkeypatch.setattr(spool_mod, "_fsync_dir", lambda p: None)   # the dir fsyncs after
    handles = _prepare_unsynced(sp, 5)
    assert not any(h.synced for h in handles)
    sp.commit(handles)
    assert calls == [str(sp.root)]
    assert list(sp.list("fast")) == [h.queue_id for h in handles]


def test_without_syncfs_each_file_and_directory_is_fsynced_before_the_rename(sp, monkeypatch):
    monkeypatch.setattr(spool_mod, "_SYNCFS", None)
    handles = _prepare_unsynced(sp, 3)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(
        f"/proc/self/fd/{fd}")), real_fsync(fd)))
    sp.commit(handles)
    for h in handles:
        directory = str(sp.root / INCOMING / h.queue_id)
        position = [synced.index(f"{directory}/{MESSAGE_FILE}"),
                    synced.index(f"{directory}/{ENVELOPE_FILE}"), synced.index(directory)]
        assert position == sorted(position)
        assert_whole(sp, "fast", h.queue_id)
    assert synced[-2:] == [str(sp.root / "fast"), str(sp.root / INCOMING)]


def test_a_failed_syncfs_commits_nothing(sp, monkeypatch):
    if spool_mod._SYNCFS is None:
        pytest.skip("no syncfs(2) on this platform")
    import ctypes
    def failing(fd):
        ctypes.set_errno(5)      # EIO: the kernel's write-back error
        return -1
    monkeypatch.setattr(spool_mod, "_SYNCFS", failing)
    handles = _prepare_unsynced(sp, 2)
    with pytest.raises(OSError) as caught:
        sp.commit(handles)
    assert caught.value.errno == 5
    assert list(sp.list("fast")) == []


def test_write_incoming_writes_a_whole_message_for_commit(sp):
    queue_id = new_queue_id()
    envelope = make_envelope(queue_id)
    body = body_for(queue_id)
    prepared = sp.write_incoming(envelope, [body[:10], body[10:]])
    assert not prepared.synced and envelope.size == len(body)
    sp.commit([prepared])
    assert_whole(sp, "fast", queue_id)
    assert sp.read_envelope("fast", queue_id).size == len(body)


def test_write_incoming_finishes_a_short_write(sp, monkeypatch):
    real = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, chunks: real(fd, [chunks[0][:3]]))
    queue_id = new_queue_id()
    sp.commit([sp.write_incoming(make_envelope(queue_id), [body_for(queue_id), b"tail"])])
    assert sp.message_path("fast", queue_id).read_bytes() == body_for(queue_id) + b"tail"


def test_write_incoming_leaves_nothing_behind_on_a_write_error(sp, monkeypatch):
    def full(fd, chunks):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "writev", full)
    with pytest.raises(OSError):
        sp.write_incoming(make_envelope(new_queue_id()), [b"x"])
    assert os.listdir(sp.root / INCOMING) == []


# --- failure injection: all or nothing ----------------------------------------

ACCEPT_STEPS = [s for s in STEPS if s not in ("before_move_rename", "after_delete_rename")]


@pytest.mark.parametrize("sync", [True, False], ids=["fsync-each", "batch-sync"])
@pytest.mark.parametrize("occurrence", [1, 2, 3])
@pytest.mark.parametrize("step", ACCEPT_STEPS)
def test_crash_at_any_accept_step_leaves_each_message_whole_or_absent(tmp_path, step, occurrence,
                                                                      sync):
    root = tmp_path / "spool"
    sp = Spool(root, failure_injector=crash_at(step, occurrence))
    ids = [new_queue_id() for _ in range(3)]
    crashed = False
    try:
        handles = []
        for queue_id in ids:
            incoming = sp.open_incoming(queue_id)
            incoming.write(body_for(queue_id))
            handles.append(incoming.prepare(make_envelope(queue_id), sync=sync))
        sp.commit(handles)
    except Crash:
        crashed = True

    report = Spool(root).recover()      # restart: a new process, a new Spool

    after = Spool(root)
    assert os.listdir(root / INCOMING) == []
    assert report.corrupt == [] and report.errors == []
    assert report.found["fast"] == list(after.list("fast"))
    for queue_id in ids:
        if queue_id in report.found["fast"]:
            assert_whole(after, "fast", queue_id)
    if not crashed or step in ("before_dir_fsync", "after_dir_fsync"):
        expected = ids                      # every rename happened
    elif step == "before_commit_rename":
        expected = ids[:occurrence - 1]
    elif step == "after_commit_rename":
        expected = ids[:occurrence]
    else:                                   # crashed while preparing: nothing committed
        expected = []
    assert report.found["fast"] == expected


@pytest.mark.parametrize("step", ["after_envelope_fsync", "after_envelope_rename"])
def test_crash_during_envelope_rewrite_keeps_old_or_new_envelope(tmp_path, step):
    root = tmp_path / "spool"
    [queue_id] = accept(Spool(root))
    sp = Spool(root, failure_injector=crash_at(step))
    envelope = sp.read_envelope("fast", queue_id)
    envelope.attempts = 7
    with pytest.raises(Crash):
        sp.write_envelope("fast", envelope)
    report = Spool(root).recover()
    assert report.found["fast"] == [queue_id] and report.corrupt == []
    assert Spool(root).read_envelope("fast", queue_id).attempts in (0, 7)
    assert report.removed_tmp == (1 if step == "after_envelope_fsync" else 0)
    assert_whole(Spool(root), "fast", queue_id)


@pytest.mark.parametrize("step", ["before_move_rename", "before_dir_fsync", "after_dir_fsync"])
def test_crash_during_move_leaves_message_in_exactly_one_queue(tmp_path, step):
    root = tmp_path / "spool"
    [queue_id] = accept(Spool(root))
    with pytest.raises(Crash):
        Spool(root, failure_injector=crash_at(step)).move(queue_id, "fast", "slow")
    report = Spool(root).recover()
    places = [q for q in ("fast", "slow") if queue_id in report.found[q]]
    assert places == (["fast"] if step == "before_move_rename" else ["slow"])
    assert_whole(Spool(root), places[0], queue_id)


def test_crash_during_delete_leaves_no_half_message(tmp_path):
    root = tmp_path / "spool"
    [queue_id] = accept(Spool(root))
    with pytest.raises(Crash):
        Spool(root, failure_injector=crash_at("after_delete_rename")).delete("fast", queue_id)
    assert list(Spool(root).list("fast")) == []
    report = Spool(root).recover()
    assert report.removed_trash == 1 and report.found["fast"] == []
    assert os.listdir(root / "fast") == []


# --- recovery -----------------------------------------------------------------

def test_incomplete_incoming_is_removed_on_recover(sp):
    incoming = sp.open_incoming(new_queue_id())
    incoming.write(b"half a message")
    (sp.root / INCOMING / "stray-file").write_bytes(b"x")
    report = Spool(sp.root).recover()
    assert sorted(report.removed_incoming) == sorted([incoming.queue_id, "stray-file"])
    assert os.listdir(sp.root / INCOMING) == []


@pytest.mark.parametrize("damage", [
    lambda d: (d / ENVELOPE_FILE).write_bytes(b'{"queue_id": '),
    lambda d: (d / ENVELOPE_FILE).write_bytes(b'\xff\xfe'),
    lambda d: (d / ENVELOPE_FILE).write_text('{"queue_id": "X", "sender": "", "recipients": []}'),
    lambda d: (d / ENVELOPE_FILE).write_text(
        json.dumps({**json.loads((d / ENVELOPE_FILE).read_text()), "queue_id": "OTHER"})),
    lambda d: (d / ENVELOPE_FILE).unlink(),
    lambda d: (d / MESSAGE_FILE).unlink(),
])
@pytest.mark.parametrize("queue", ["fast", "slow", "hold", "quarantine/virus"])
def test_corrupt_message_is_moved_to_corrupt_not_deleted(sp, queue, damage):
    [good, bad] = accept(sp, queue, count=2)
    damage(sp.root / queue / bad)
    before = sorted(os.listdir(sp.root / queue / bad))
    report = Spool(sp.root).recover()
    assert [(q, name) for q, name, _ in report.corrupt] == [(queue, bad)]
    assert report.found[queue] == [good] and report.found[CORRUPT] == [bad]
    assert sorted(os.listdir(sp.root / CORRUPT / bad)) == before
    assert_whole(sp, queue, good)


# --- the size check (chaos finding 7) --------------------------------------------

def _cut(sp, queue, queue_id, octets):
    """Storage trouble or a hand edit: the same file, shorter (truncate keeps the inode)."""
    with open(sp.message_path(queue, queue_id), "r+b") as message:
        message.truncate(octets)


@pytest.mark.parametrize("octets", [0, 20])
@pytest.mark.parametrize("queue", ["fast", "slow", "hold", "quarantine/spam"])
def test_a_message_file_cut_short_goes_to_corrupt_at_start(sp, queue, octets):
    [good, bad] = accept(sp, queue, count=2)
    _cut(sp, queue, bad, octets)
    report = Spool(sp.root).recover()
    [(where, name, reason)] = report.corrupt
    assert (where, name) == (queue, bad)
    assert reason == (f"the message file has {octets} octets, its envelope says "
                      f"{len(body_for(bad))}")
    assert report.found[queue] == [good] and report.found[CORRUPT] == [bad]
    assert Spool(sp.root).problem(CORRUPT, bad) == reason     # what queue list shows


def test_every_accept_path_records_the_size_and_inode_of_the_file_it_wrote(sp):
    prepared = accept(sp)[0]
    queue_id = new_queue_id()
    sp.commit([sp.write_incoming(make_envelope(queue_id), [body_for(queue_id)])])
    copy_id = new_queue_id()
    sp.copy_to(prepared, "fast", "hold", copy_id)
    for queue, name in (("fast", prepared), ("fast", queue_id), ("hold", copy_id)):
        envelope = sp.read_envelope(queue, name)
        status = os.stat(sp.message_path(queue, name))
        assert (envelope.size, envelope.message_inode) == (status.st_size, status.st_ino)
        assert sp.read_entry(queue, name) == envelope


def test_a_message_file_replaced_by_a_rewrite_is_not_held_to_the_old_size(sp):
    """The pipeline renames its rewrite over the message and sets the size in memory; a
    crash before the envelope follows must not cost a good message its delivery."""
    [queue_id] = accept(sp)
    path = sp.message_path("fast", queue_id)
    temp = path.with_name("message.rewrite")
    temp.write_bytes(body_for(queue_id) + b"a disclaimer\r\n")
    temp.rename(path)
    assert Spool(sp.root).recover().corrupt == []
    envelope = sp.read_entry("fast", queue_id)
    envelope.size = path.stat().st_size         # what the pipeline sets
    sp.write_envelope("fast", envelope)         # ... and what the next write records
    _cut(sp, "fast", queue_id, 5)               # the rewritten file is checked from then on
    with pytest.raises(EnvelopeError, match="has 5 octets"):
        sp.read_entry("fast", queue_id)


def test_an_envelope_written_before_inodes_were_kept_is_not_size_checked(sp):
    [queue_id] = accept(sp)
    envelope_path = sp.root / "fast" / queue_id / ENVELOPE_FILE
    data = json.loads(envelope_path.read_bytes())
    del data["message_inode"]
    envelope_path.write_text(json.dumps(data))
    _cut(sp, "fast", queue_id, 3)
    assert Spool(sp.root).recover().corrupt == []


def test_read_entry_tells_a_gone_message_from_a_damaged_one(sp):
    [gone, no_file, wrong_id] = accept(sp, count=3)
    sp.delete("fast", gone)
    (sp.root / "fast" / no_file / MESSAGE_FILE).unlink()
    envelope = sp.read_envelope("fast", wrong_id)
    envelope.queue_id = "OTHER"
    (sp.root / "fast" / wrong_id / ENVELOPE_FILE).write_bytes(envelope.to_json())
    with pytest.raises(FileNotFoundError):
        sp.read_entry("fast", gone)
    with pytest.raises(EnvelopeError, match="message file missing"):
        sp.read_entry("fast", no_file)
    with pytest.raises(EnvelopeError, match="envelope is for OTHER"):
        sp.read_entry("fast", wrong_id)


def test_set_aside_moves_an_entry_to_corrupt_under_a_free_name(sp):
    [first, second] = accept(sp, count=2)
    (sp.root / CORRUPT / first).mkdir()
    assert sp.set_aside("fast", first) == f"{first}.1"
    assert sp.set_aside("fast", second) == second
    assert list(sp.list("fast")) == []
    assert list(sp.list(CORRUPT)) == sorted([first, f"{first}.1", second])
    assert [sp.set_aside_from(name) for name in (f"{first}.1", second, first)] == [
        "fast", "fast", None]       # the one made by hand: unknown


def test_junk_entries_go_to_corrupt_without_clobbering(sp):
    (sp.root / "slow" / "junk").write_bytes(b"not a directory")
    (sp.root / CORRUPT / "junk").write_bytes(b"an older one")
    report = Spool(sp.root).recover()
    assert report.found[CORRUPT] == ["junk", "junk.1"]
    assert (sp.root / CORRUPT / "junk.1").read_bytes() == b"not a directory"


def test_recover_rebuilds_state_from_disk_alone(sp):
    fast = accept(sp, "fast", count=2)
    slow = accept(sp, "slow")
    hold = accept(sp, "hold")
    report = Spool(sp.root).recover()
    assert report.found == {"fast": fast, "slow": slow, "hold": hold, "quarantine/spam": [],
                            "quarantine/virus": [], CORRUPT: []}
    assert Spool(sp.root).recover().found == report.found     # idempotent


def test_recover_never_raises_and_reports_what_it_could_not_fix(sp, monkeypatch):
    [queue_id] = accept(sp)
    (sp.root / "fast" / queue_id / MESSAGE_FILE).unlink()
    def refuse(*args):
        raise PermissionError("no")
    monkeypatch.setattr(spool_mod.os, "rename", refuse)
    report = sp.recover()
    assert report.corrupt == [] and len(report.errors) == 1
    assert queue_id in report.errors[0]


# --- state changes ---------------------------------------------------------------

def test_move_between_queues(sp):
    [queue_id] = accept(sp)
    sp.move(queue_id, "fast", "slow")
    sp.move(queue_id, "slow", "hold")
    assert list(sp.list("fast")) == list(sp.list("slow")) == []
    assert_whole(sp, "hold", queue_id)
    with pytest.raises(FileNotFoundError):
        sp.move(queue_id, "fast", "slow")


def test_move_refuses_to_overwrite(sp):
    [queue_id] = accept(sp)
    sp.copy_to(queue_id, "fast", "slow", queue_id)
    with pytest.raises(FileExistsError):
        sp.move(queue_id, "fast", "slow")
    assert_whole(sp, "fast", queue_id)


def test_delete_removes_the_whole_message(sp):
    [queue_id, other] = accept(sp, count=2)
    sp.delete("fast", queue_id)
    assert everything(sp)["fast"] == [other]
    with pytest.raises(FileNotFoundError):
        sp.delete("fast", queue_id)


def test_copy_to_makes_an_independent_copy_through_incoming(sp):
    [queue_id] = accept(sp, "hold")
    copy_id = new_queue_id()
    sp.copy_to(queue_id, "hold", "quarantine/virus", copy_id)
    copy = sp.read_envelope("quarantine/virus", copy_id)
    assert copy.queue_id == copy_id and copy.sender == "alice@example.org"
    with sp.open_message("quarantine/virus", copy_id) as f:
        assert f.read() == body_for(queue_id)
    assert_whole(sp, "hold", queue_id)
    assert os.listdir(sp.root / INCOMING) == []


def test_copy_to_with_a_new_envelope_for_a_forward_copy(sp):
    [queue_id] = accept(sp, "hold")
    forward = make_envelope("IGNORED")
    forward.recipients = [Recipient("admin@example.org")]
    copy_id = new_queue_id()
    sp.copy_to(queue_id, "hold", "fast", copy_id, envelope=forward)
    copy = sp.read_envelope("fast", copy_id)
    assert [r.address for r in copy.recipients] == ["admin@example.org"]
    assert forward.queue_id == "IGNORED"        # the argument is not modified


def test_failed_copy_leaves_nothing_in_incoming(tmp_path):
    root = tmp_path / "spool"
    [queue_id] = accept(Spool(root), "hold")
    sp = Spool(root, failure_injector=crash_at("before_commit_rename"))
    with pytest.raises(Crash):
        sp.copy_to(queue_id, "hold", "fast", new_queue_id())
    assert os.listdir(root / INCOMING) == [] and list(sp.list("fast")) == []


def test_list_is_sorted_and_skips_trash(sp):
    ids = accept(sp, count=5)
    (sp.root / "fast" / ".trash-X").mkdir()
    assert list(sp.list("fast")) == sorted(ids)


def test_disk_free_fraction_is_between_0_and_1(sp):
    assert 0.0 <= sp.disk_free_fraction() <= 1.0


# --- edges ---------------------------------------------------------------------

def test_minimal_envelope_takes_the_defaults():
    envelope = Envelope.from_json(b'{"queue_id": "A", "sender": "", "recipients": [],'
                                  b' "received_at": 5}')
    assert envelope == Envelope("A", "", [], 5)
    assert envelope.body == "7BIT" and envelope.next_attempt_at is None and envelope.meta == {}


def test_misuse_of_a_handle_or_queue_raises(sp):
    queue_id = new_queue_id()
    with sp.open_incoming(queue_id) as incoming:
        incoming.write(body_for(queue_id))
        prepared = incoming.prepare(make_envelope(queue_id))
    with pytest.raises(RuntimeError):
        incoming.prepare(make_envelope(queue_id))
    with pytest.raises(ValueError):
        sp.commit([prepared], CORRUPT)
    with pytest.raises(ValueError):
        sp.list("nowhere")
    with pytest.raises(FileNotFoundError):
        sp.write_envelope("slow", make_envelope(queue_id))
    sp.commit([prepared])
    assert_whole(sp, "fast", queue_id)


def test_existing_queue_directory_is_made_private(tmp_path):
    (tmp_path / "spool" / "hold").mkdir(parents=True, mode=0o755)
    (tmp_path / "spool" / "hold").chmod(0o755)
    Spool(tmp_path / "spool")
    assert stat.S_IMODE((tmp_path / "spool" / "hold").stat().st_mode) == 0o700


@pytest.mark.parametrize("leftover", [(), ("message",), ("message", "envelope.json", "x.tmp")])
def test_delete_replaces_a_stale_trash_entry(sp, leftover):
    [queue_id] = accept(sp)
    stale = sp.root / "fast" / (".trash-" + queue_id)
    stale.mkdir()
    for name in leftover:
        (stale / name).write_bytes(b"old")
    sp.delete("fast", queue_id)
    assert os.listdir(sp.root / "fast") == []


def test_delete_removes_files_beyond_the_usual_two(sp):
    [queue_id] = accept(sp)
    (sp.message_path("fast", queue_id).parent / "message.rewrite.tmp").write_bytes(b"x")
    sp.delete("fast", queue_id)
    assert os.listdir(sp.root / "fast") == []


def test_recover_reports_an_unreadable_queue_and_goes_on(sp, monkeypatch):
    [queue_id] = accept(sp, "hold")
    real = os.listdir
    broken = str(sp.root / "slow")

    def listdir(path):
        if str(path) == broken:
            raise PermissionError("denied")
        return real(path)
    monkeypatch.setattr(spool_mod.os, "listdir", listdir)
    report = sp.recover()
    assert report.found["slow"] == [] and report.found["hold"] == [queue_id]
    assert len(report.errors) == 2 and all("slow" in e for e in report.errors)


def test_corrupt_folder_is_never_touched_by_recover(sp):
    (sp.root / CORRUPT / "ABC").mkdir()
    (sp.root / CORRUPT / "ABC" / ENVELOPE_FILE).write_bytes(b"junk")
    report = sp.recover()
    assert report.found[CORRUPT] == ["ABC"] and report.corrupt == []


def test_failure_to_create_the_message_file_leaves_no_directory(sp, monkeypatch):
    real = os.open

    def failing_open(path, *args, **kwargs):
        if str(path).endswith(MESSAGE_FILE):
            raise OSError(28, "No space left on device")
        return real(path, *args, **kwargs)
    monkeypatch.setattr(spool_mod.os, "open", failing_open)
    with pytest.raises(OSError):
        sp.open_incoming(new_queue_id())
    assert os.listdir(sp.root / INCOMING) == []


def test_abort_after_a_failed_flush_still_removes_the_message(sp):
    incoming = sp.open_incoming(new_queue_id())
    incoming.write(b"x" * 10)

    class FullDisk:
        def close(self):
            raise OSError(28, "No space left on device")
    incoming._file.close()
    incoming._file = FullDisk()
    incoming.abort()
    assert os.listdir(sp.root / INCOMING) == []
