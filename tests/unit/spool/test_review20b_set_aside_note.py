"""The reason Spool.set_aside notes beside a corrupt/ entry (shared/spool.py rule 6), as
`mailmoat queue list corrupt` reads it back (review20b T1): one line whatever the reason's
lines, cut at SET_ASIDE_REASON_CHARS, any text kept as UTF-8 (the note was ASCII before:
the queue name alone), and nothing noted when no reason is given."""

from shared.spool import CORRUPT, ORIGIN_PREFIX, SET_ASIDE_REASON_CHARS, Spool
from tests.support.spool import put_message


def _aside(tmp_path, reason):
    sp = Spool(tmp_path / "spool")
    queue_id = put_message(sp, "hold")
    assert sp.set_aside("hold", queue_id, reason) == queue_id
    return sp, queue_id


def test_a_reason_of_several_lines_is_noted_on_one(tmp_path):
    sp, queue_id = _aside(tmp_path, "envelope:\n  bad JSON\r\n\tat line 2  ")
    assert sp.set_aside_reason(queue_id) == "envelope: bad JSON at line 2"
    assert sp.set_aside_from(queue_id) == "hold"            # the queue stays line 1


def test_a_long_non_ascii_reason_is_cut_at_its_length_in_characters_and_kept_as_utf8(
        tmp_path):
    assert SET_ASIDE_REASON_CHARS == 500
    sp, queue_id = _aside(tmp_path, "a\nb " + "é" * 600)
    reason = sp.set_aside_reason(queue_id)
    assert reason == "a b " + "é" * (SET_ASIDE_REASON_CHARS - 4)
    note = (sp.root / CORRUPT / (ORIGIN_PREFIX + queue_id)).read_bytes()
    assert note == b"hold\n" + reason.encode("utf-8") + b"\n"


def test_text_utf8_cannot_hold_is_replaced_not_a_reason_to_lose_the_note(tmp_path):
    # a file name read from a disk in another encoding (os.fsdecode's surrogate escapes)
    sp, queue_id = _aside(tmp_path, "message file: No such file: b\udce4d")
    assert sp.set_aside_reason(queue_id) == "message file: No such file: b?d"
    assert sp.set_aside_from(queue_id) == "hold"


def test_without_a_reason_only_the_queue_is_noted(tmp_path):
    sp, queue_id = _aside(tmp_path, None)
    assert sp.set_aside_reason(queue_id) is None
    assert (sp.root / CORRUPT / (ORIGIN_PREFIX + queue_id)).read_text() == "hold\n"
