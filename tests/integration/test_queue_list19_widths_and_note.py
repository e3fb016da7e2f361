"""`mailmoat queue list` (review19 r4 D1, and fixer19 F16's note on a8bacb9).

Its columns are padded by terminal columns, as the text reports are
(shared/report_format.py `display_width`): padded by characters, an SMTPUTF8 sender
(`a@例子.测试`) pushed every later column of its row right by one per CJK character.

LAST ERROR shows a backup MX's refusal after the primary's reply, as the deferred event and
the DSN do (core/delivery/bounce.py `with_note`): since a8bacb9 the envelope keeps that
note apart (DELIVERY_NOTE), and the listing showed the reply alone.

The CLI runs as a real subprocess over a spool written by shared/spool.py.
"""

from __future__ import annotations

import unicodedata

from shared.paths import DataHome
from shared.report_format import display_width
from shared.spool import DELIVERY_NOTE, Envelope, Spool, new_queue_id
from tests.integration.test_cli import mailmoat
from tests.integration.test_i18n19_report_widths import columns
from tests.support.core import make_home


def _waiting(home: DataHome, sender: str, recipient: str, error: str, **extra) -> str:
    spool = Spool(home.spool)
    queue_id = new_queue_id()
    incoming = spool.open_incoming(queue_id)
    incoming.write(b"Subject: s\r\n\r\nbody\r\n")
    envelope = Envelope.new(queue_id, sender, [recipient], attempts=1)
    waiting = envelope.recipients[0]
    waiting.status, waiting.last_error = "deferred", error
    waiting.extra.update(extra)
    spool.commit([incoming.prepare(envelope)], "slow")
    return queue_id


def test_columns_line_up_after_a_cjk_sender_and_reply(tmp_path):
    home = make_home(tmp_path / "home")
    _waiting(home, "a@例子.测试", "用户@例子.测试", "451 4.2.0 メールボックスが一杯です")
    _waiting(home, "someone.longer@example.com", "b@example.net", "451 4.2.0 busy")
    header, *rows = mailmoat("queue", "list", "slow", "--home", home.root).stdout.splitlines()
    assert len(rows) == 2
    for heading, value in (("RECIPIENTS", ("用户@", "b@example.net")),
                           ("SIZE", (" 20 ",)), ("LAST ERROR", ("451 ",))):
        starts = {columns(row[:row.index(v)]) + (1 if v.startswith(" ") else 0)
                  for row in rows for v in value if v in row}
        assert starts == {columns(header[:header.index(heading)])}, (heading, rows)


def test_last_error_shows_the_backup_mx_note(tmp_path):
    home = make_home(tmp_path / "home")
    note = "mx2.dest.test answered 550 5.7.1 relay access denied"
    _waiting(home, "a@example.com", "carol@dest.test", "450 4.2.1 greylisted",
             **{DELIVERY_NOTE: note})
    _header, row = mailmoat("queue", "list", "slow", "--home", home.root).stdout.splitlines()
    assert row.endswith(f"450 4.2.1 greylisted (then {note})"), row


def test_decomposed_hangul_takes_the_columns_of_its_syllables():
    """review19 r4 C4: a macOS file name's NFD Hangul (leading consonant, vowel, final
    consonant jamo) is drawn in the syllable's two columns; the vowel and final jamo were
    counted one each (`한국어.txt` 15 against 10 drawn)."""
    name = unicodedata.normalize("NFD", "한국어.txt")
    assert len(name) == 12
    assert display_width(name) == display_width("한국어.txt") == 10
    assert display_width("\u1100\ud7b0\ud7cb") == 2        # the extended-B jamo too


def test_next_says_when_a_slow_entry_is_tried_again(tmp_path):
    """tester28c C2: nothing said when mail waiting after a failure would be tried again."""
    import time
    from shared.spool import Spool
    home = make_home(tmp_path / "home")
    later = _waiting(home, "a@example.com", "b@example.net", "451 4.2.0 busy")
    due = _waiting(home, "a@example.com", "c@example.net", "451 4.2.0 busy")
    spool = Spool(home.spool)
    for queue_id, at in ((later, time.time() + 600), (due, time.time() - 5)):
        envelope = spool.read_envelope("slow", queue_id)
        envelope.next_attempt_at = at
        spool.write_envelope("slow", envelope)
    header, *rows = mailmoat("queue", "list", "--home", home.root).stdout.splitlines()
    column = header.index("NEXT")
    shown = {row.split()[1]: row[column:].split()[:2] for row in rows}
    assert shown[later][0] == "in" and shown[later][1] in {f"9m{s:02d}s" for s in range(50, 60)} \
        | {"10m00s"}, rows
    assert shown[due][0] == "due", rows
