"""shared/spool.py rule 7: one id in several queues at start (backup-restore finding 1) is
left in one, the queue a message reaches later in its life; no copy of it is lost."""

import shutil

import pytest

from shared.spool import CORRUPT, MESSAGE_QUEUES, Spool
from tests.support.spool import put_message

# (queues holding the id) -> (queue kept, what is done with each other copy)
CASES = {
    ("fast", "slow"): ("slow", {"fast": "deleted"}),
    ("fast", "hold"): ("hold", {"fast": "deleted"}),
    ("fast", "quarantine/spam"): ("quarantine/spam", {"fast": "deleted"}),
    ("fast", "quarantine/virus"): ("quarantine/virus", {"fast": "deleted"}),
    ("hold", "slow"): ("slow", {"hold": "deleted"}),         # reprocessed, then deferred
    ("hold", "quarantine/virus"): ("quarantine/virus", {"hold": "deleted"}),
    # no move leads from one to the other: the quarantine keeps it, the other goes aside
    ("slow", "quarantine/spam"): ("quarantine/spam", {"slow": "corrupt"}),
    ("quarantine/spam", "quarantine/virus"): ("quarantine/virus",
                                              {"quarantine/spam": "corrupt"}),
    ("fast", "slow", "quarantine/virus"): ("quarantine/virus",
                                           {"fast": "deleted", "slow": "corrupt"}),
}


def _put(sp: Spool, queue: str) -> str:
    return put_message(sp, queue)


@pytest.mark.parametrize("queues", list(CASES), ids="+".join)
def test_recover_keeps_the_copy_in_the_later_queue(tmp_path, queues):
    sp = Spool(tmp_path / "spool")
    kept, others = CASES[queues]
    queue_id = _put(sp, queues[0])
    for queue in queues[1:]:
        shutil.copytree(sp.root / queues[0] / queue_id, sp.root / queue / queue_id)
    alone = _put(sp, "fast")
    report = Spool(sp.root).recover()
    assert report.corrupt == []
    [(copied, where, done)] = report.copies
    assert (copied, where) == (queue_id, kept)
    assert {q: "corrupt" if what.startswith(CORRUPT + "/") else what
            for q, what in done} == others
    assert [q for q in MESSAGE_QUEUES if queue_id in report.found[q]] == [kept]
    assert report.found["fast"] == [alone]          # other entries are left alone
    aside = [q for q, what in others.items() if what == "corrupt"]
    assert len(report.found[CORRUPT]) == len(aside)
    assert [sp.set_aside_from(name) for name in report.found[CORRUPT]] == aside
    assert sp.read_entry(kept, queue_id).queue_id == queue_id
    assert Spool(sp.root).recover().copies == []      # done once


def test_a_whole_copy_is_kept_over_a_damaged_one(tmp_path):
    sp = Spool(tmp_path / "spool")
    queue_id = _put(sp, "fast")
    shutil.copytree(sp.root / "fast" / queue_id, sp.root / "slow" / queue_id)
    (sp.root / "slow" / queue_id / "message").write_bytes(b"Subj")    # a cut-off copy
    report = Spool(sp.root).recover()
    assert [(q, name) for q, name, _ in report.corrupt] == [("slow", queue_id)]
    assert report.copies == [] and report.found["fast"] == [queue_id]
