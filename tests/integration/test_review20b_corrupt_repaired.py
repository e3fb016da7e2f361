"""`mailmoat queue list corrupt` after an entry was repaired in place in spool/corrupt/
(review20b R2): LAST ERROR gave the damage noted when it was set aside word for word, in the
present tense, so the entry looked as broken after the repair docs/operations.md describes
as before it. Now, with nothing wrong found, it says so and gives the noted damage as the
reason it was set aside. Real spool files, the core's start-up recovery, the CLI as a
subprocess."""

from __future__ import annotations

import json

import pytest

from shared.spool import CORRUPT, ENVELOPE_FILE, Spool
from tests.integration.test_opsdocs20_corrupt_reason import _list_corrupt
from tests.support.core import make_home
from tests.support.spool import BODY, put_message

ADDED = b"more\r\n"
DAMAGE = f"the message file has {len(BODY) + len(ADDED)} octets, its envelope says {len(BODY)}"


def _write_the_original_back(spool: Spool, queue_id: str) -> None:
    spool.message_path(CORRUPT, queue_id).write_bytes(BODY)


def _make_the_envelope_match(spool: Spool, queue_id: str) -> None:
    """The other repair the doc gives: the envelope's `size` made that of the file."""
    path = spool.root / CORRUPT / queue_id / ENVELOPE_FILE
    envelope = json.loads(path.read_text())
    envelope["size"] = len(BODY) + len(ADDED)
    path.write_text(json.dumps(envelope))


@pytest.mark.parametrize("repair", [_write_the_original_back, _make_the_envelope_match])
def test_a_damage_repaired_in_corrupt_is_given_as_why_it_was_set_aside_not_as_now(tmp_path,
                                                                                  repair):
    home = make_home(tmp_path / "home")
    spool = Spool(home.spool)
    queue_id = put_message(spool, "hold", hold_reason="cannot process message: held")
    with open(spool.message_path("hold", queue_id), "ab") as message:
        message.write(ADDED)                    # no longer of the size recorded
    spool.recover()                             # what the core does at start
    assert list(spool.list(CORRUPT)) == [queue_id]
    assert _list_corrupt(home)[queue_id].endswith(f"  {DAMAGE}")      # wrong now: said so
    repair(spool, queue_id)
    assert spool.problem(CORRUPT, queue_id) is None
    row = _list_corrupt(home)[queue_id]
    assert row.split()[:3] == ["corrupt", queue_id, "hold"]
    assert row.endswith(f"  nothing wrong found now; set aside because: {DAMAGE}")
