"""A command's positional arguments may follow its options (upgrade17 C6: `mailmoat queue
forward --home H --hold --id ID ADDRESS` was "unrecognized arguments: ADDRESS", where
ADDRESS had to come right after `forward`). The CLI runs in this process."""

from __future__ import annotations

import json

import pytest

from shared import db
from shared.cli import main
from shared.spool import Spool
from tests.support.core import make_home
from tests.support.spool import put_message


def _requests(home) -> list[dict]:
    conn = db.connect(home.db)
    try:
        return [json.loads(row["args"]) for row in
                conn.execute("SELECT args FROM commands ORDER BY id")]
    finally:
        conn.close()


@pytest.mark.parametrize("argv", [
    ["queue", "forward", "--home", "{home}", "--hold", "--id", "{id}", "--no-wait",
     "admin@local.test"],
    ["queue", "forward", "admin@local.test", "--home", "{home}", "--hold", "--id",
     "{id}", "--no-wait"],
    ["queue", "--home", "{home}", "forward", "--hold", "admin@local.test", "--id",
     "{id}", "--no-wait"],
])
def test_forward_takes_the_address_before_or_after_the_options(tmp_path, capsys, argv):
    home = make_home(tmp_path / "home")
    held = put_message(Spool(home.spool), "hold", hold_reason="suspect_message")
    assert main([arg.format(home=home.root, id=held) for arg in argv]) == 0
    assert capsys.readouterr().out == "request 1 queued for the core\n"
    [request] = _requests(home)
    assert request["address"] == "admin@local.test"
    assert request["ids"] == [held]


def test_an_argument_too_many_is_still_refused(tmp_path, capsys):
    home = make_home(tmp_path / "home")
    with pytest.raises(SystemExit) as exit:
        main(["queue", "forward", "--home", str(home.root), "--hold", "--no-wait",
              "admin@local.test", "extra"])
    assert exit.value.code == 2
    assert "unrecognized arguments: extra" in capsys.readouterr().err
    assert _requests(home) == []
