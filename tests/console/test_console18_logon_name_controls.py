"""A failed logon's user name is stored with its control characters escaped, as an
unauthorized_access path is, so that the detail page, the console's CSV and the CLI show
the same safe text (console18 B5: a user name with NUL, ESC and CR LF reached the page and
the CSV raw, from anyone who could reach the logon page)."""

from __future__ import annotations

import csv
import io
import re

from shared.cli import main
from shared.events import Action

HOSTILE = "a\x00b\x1b[31m\r\nX: y"
ESCAPED = "a\\x00b\\x1b[31m\\r\\nX: y"
RANGE = {"start": "2027-01-15T07:00", "end": "2027-01-15T08:01"}
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def test_a_failed_logon_name_is_stored_and_shown_escaped(console, home, capsys):
    for _attempt in range(3):                   # the third also writes failed_logon
        console.logon(HOSTILE, "wrong")
    console.logon()
    [logon, *_] = console.events(Action.LOGON)
    assert (logon["info"], logon["data"]) == (ESCAPED, {"user": ESCAPED})
    assert console.events(Action.FAILED_LOGON)[0]["data"]["account"] == ESCAPED

    page = console.get("/reporting/detail?generated=1&start={start}&end={end}"
                       "&actions=logon&actions=failed_logon".format(**RANGE)).get_data(as_text=True)
    assert ESCAPED in page and not _CONTROL.search(page)

    download = console.post("/reporting/detail", {**RANGE, "actions": ["logon", "failed_logon"],
                                                  "write_csv": "1"}).get_data(as_text=True)
    assert not _CONTROL.search(download)
    infos = [row["info"] for row in csv.DictReader(io.StringIO(download.lstrip("\ufeff")))]
    assert any(ESCAPED in info for info in infos)

    capsys.readouterr()
    assert main(["report", "detail", "--home", str(home.root), "--action", "logon",
                 "--from", RANGE["start"], "--to", RANGE["end"], "--format", "text"]) == 0
    assert ESCAPED in capsys.readouterr().out
