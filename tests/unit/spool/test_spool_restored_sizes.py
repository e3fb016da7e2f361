"""The size check of entries restored from a copy (backup-restore finding 4): a message file
cut short in a backup has a new inode after the restore, and was delivered as it was; the
check now holds every entry to the size its envelope gives, except the one file that may
rightly differ — a fast/ entry's, rewritten by the pipeline in its own directory just before
a crash."""

import json
import shutil

import pytest

from shared.spool import CORRUPT, ENVELOPE_FILE, MESSAGE_QUEUES, Spool
from tests.support.spool import put_message

BODY = b"Received: from x\r\nSubject: s\r\nMessage-ID: <m@x.test>\r\n\r\n" + b"b" * 200


def _put(sp: Spool, queue: str, **fields) -> str:
    return put_message(sp, queue, body=BODY, **fields)


def _restored(sp: Spool, tmp_path) -> Spool:
    """`cp -a` of the spool to a new place: every inode new."""
    shutil.copytree(sp.root, tmp_path / "restored")
    return Spool(tmp_path / "restored")


def _cut(sp: Spool, queue: str, queue_id: str, octets: int = 150) -> None:
    with open(sp.message_path(queue, queue_id), "r+b") as message:
        message.truncate(octets)


@pytest.mark.parametrize("processed", [False, True])
@pytest.mark.parametrize("queue", MESSAGE_QUEUES)
def test_a_restored_message_file_cut_short_goes_to_corrupt(tmp_path, queue, processed):
    sp = Spool(tmp_path / "spool")
    good, bad = _put(sp, queue, processed=processed), _put(sp, queue, processed=processed)
    restored = _restored(sp, tmp_path)
    _cut(restored, queue, bad)
    report = restored.recover()
    assert report.corrupt == [(queue, bad, f"the message file has 150 octets, its envelope "
                                           f"says {len(BODY)}")]
    assert report.found[queue] == [good] and report.found[CORRUPT] == [bad]
    assert restored.problem(CORRUPT, bad) == report.corrupt[0][2]    # what the listing says


@pytest.mark.parametrize("queue", ["slow", "hold", "quarantine/virus"])
def test_an_envelope_of_an_older_release_is_held_to_its_size_outside_fast(tmp_path, queue):
    """Written before the directory's inode was kept: outside fast/ no rewrite can explain
    another file of another size."""
    sp = Spool(tmp_path / "spool")
    queue_id = _put(sp, queue)
    path = sp.root / queue / queue_id / ENVELOPE_FILE
    data = json.loads(path.read_bytes())
    del data["entry_inode"]
    path.write_text(json.dumps(data))
    restored = _restored(sp, tmp_path)
    _cut(restored, queue, queue_id)
    assert [name for _, name, _ in restored.recover().corrupt] == [queue_id]


def test_a_rewrite_in_place_before_a_crash_is_still_not_held_to_the_old_size(tmp_path):
    sp = Spool(tmp_path / "spool")
    queue_id = _put(sp, "fast")
    path = sp.message_path("fast", queue_id)
    rewritten = path.with_name("message.rewrite")
    rewritten.write_bytes(BODY[:100])           # e.g. an attachment removed
    rewritten.rename(path)
    assert Spool(sp.root).recover().corrupt == []
    assert sp.read_entry("fast", queue_id).queue_id == queue_id
