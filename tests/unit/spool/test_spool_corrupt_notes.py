"""shared/spool.py rule 6: the note set_aside leaves beside a corrupt/ entry (the queue it
came from) goes when the entry leaves corrupt/ (review 15 C5: an entry moved back by hand,
as docs/operations.md says to, left its note behind for good)."""

import os

from shared.spool import CORRUPT, ORIGIN_PREFIX, Spool
from tests.support.spool import put_message


def _put(sp: Spool, queue: str) -> str:
    return put_message(sp, queue)


def _corrupt(sp: Spool) -> list[str]:
    return sorted(os.listdir(sp.root / CORRUPT))


def test_the_note_is_written_whole_beside_the_entry(tmp_path):
    sp = Spool(tmp_path / "spool")
    queue_id = _put(sp, "hold")
    assert sp.set_aside("hold", queue_id) == queue_id
    assert _corrupt(sp) == [ORIGIN_PREFIX + queue_id, queue_id]     # no temp file left
    assert sp.set_aside_from(queue_id) == "hold"


def test_recover_removes_the_note_of_an_entry_moved_back_and_keeps_the_others(tmp_path):
    sp = Spool(tmp_path / "spool")
    back, stays = _put(sp, "hold"), _put(sp, "slow")
    sp.set_aside("hold", back)
    sp.set_aside("slow", stays)
    os.rename(sp.root / CORRUPT / back, sp.root / "hold" / back)    # repaired by hand
    (sp.root / CORRUPT / (ORIGIN_PREFIX + "X.tmp")).write_text("fast\n")  # a cut-off write
    report = sp.recover()
    assert _corrupt(sp) == [ORIGIN_PREFIX + stays, stays]
    assert report.found["hold"] == [back] and report.corrupt == []
    assert sp.set_aside_from(stays) == "slow"
