"""`mailmoat queue list` shows text from the mail as `mailmoat report` does (security21 B1).

A file name in a hold reason, a sender's or recipient's address and a next hop's reply
went to the administrator's terminal byte for byte: an escape sequence set the window
title, cleared the screen, coloured the text, and a right-to-left override made
"exe.zip" read as "piz.exe". Control characters now show as `\\x1b`, bidi controls as
`⟨U+202E⟩` (shared/shown_text.py `one_line`), and the columns still line up.

The CLI runs as a real subprocess over a spool written by shared/spool.py.
"""

from __future__ import annotations

from shared.spool import Envelope, Spool, new_queue_id
from tests.integration.test_cli import mailmoat
from tests.integration.test_i18n19_report_widths import columns
from tests.support.core import make_home

TRAP = "\x1b]0;PWNED\x07\x1b[2J\x1b[31mRED\x1b[0m\u202epiz.exe"


def _held(home, sender: str, recipient: str, reason: str) -> None:
    spool = Spool(home.spool)
    queue_id = new_queue_id()
    incoming = spool.open_incoming(queue_id)
    incoming.write(b"Subject: s\r\n\r\nbody\r\n")
    envelope = Envelope.new(queue_id, sender, [recipient])
    envelope.hold_reason = reason
    spool.commit([incoming.prepare(envelope)], "hold")


def test_mail_text_cannot_drive_the_terminal(tmp_path):
    home = make_home(tmp_path / "home")
    _held(home, "a\u202eb@example.com", "u@\u202eevil.test",
          f"cannot process {TRAP} (part2): cannot read zip container")
    _held(home, "plain@example.com", "v@example.net", "held by policy")
    out = mailmoat("queue", "list", "hold", "--home", home.root).stdout
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, repr(out)
    header, *rows = out.splitlines()
    assert "cannot process \\x1b]0;PWNED\\x07\\x1b[2J" in rows[0] + rows[1]
    assert "\u27e8U+202E\u27e9piz.exe" in out
    assert "a\u27e8U+202E\u27e9b@example.com" in out
    assert "u@\u27e8U+202E\u27e9evil.test" in out
    # the escaped text is what the columns are padded by
    starts = {columns(row[:row.index(v)]) for row in rows
              for v in ("u@", "v@example.net") if v in row}
    assert starts == {columns(header[:header.index("RECIPIENTS")])}, rows
