"""A backup of an upgraded home (upgrade17 B4, B5): `config export` names the stored values
this release's rules refuse, and `config import` of such a file names every value to correct
in one round, the host's refusals (an smtp.listen address it cannot listen on) with the
schema's. Old values are written straight into the settings table, as an older release's
`config set` wrote them; the CLI runs in this process (`shared.cli.main`)."""

from __future__ import annotations

import json

from shared.cli import main
from shared.ports import CHANGE_REFUSED
from tests.support.core import make_home, store_unchecked, stored_settings

# 127.255.255.255 is the broadcast address of 127.0.0.0/8, which every Linux host has.
OLD_VALUES = {"smtp.listen": ["127.0.0.1", "127.255.255.255"], "address_chars.chars": "%%!"}


def _export(home, capsys) -> tuple[dict, str]:
    assert main(["config", "export", "--home", str(home.root)]) == 0
    out, err = capsys.readouterr()
    return json.loads(out), err


def test_import_names_the_listen_address_with_the_other_refused_values(tmp_path, capsys):
    """The host's refusal of the listen address came alone; address_chars.chars was named
    only once the file's smtp.listen was corrected (B4)."""
    old = make_home(tmp_path / "old")
    store_unchecked(old, OLD_VALUES)
    exported, _err = _export(old, capsys)
    backup = tmp_path / "backup.json"
    backup.write_text(json.dumps(exported), "utf-8")
    target = make_home(tmp_path / "target")
    before = stored_settings(target)

    assert main(["config", "import", str(backup), "--home", str(target.root)]) == 2
    _out, err = capsys.readouterr()
    assert sorted(line.split(":", 1)[0] for line in err.splitlines()) == [
        "address_chars.chars", "smtp.listen"]
    assert "127.255.255.255 is a broadcast address" in err
    assert stored_settings(target) == before


def test_export_names_the_refused_values_on_stderr_and_the_json_stays_whole(tmp_path, capsys):
    """An upgraded home's own export was refused at its import with nothing said when it
    was made (B5)."""
    home = make_home(tmp_path / "home")
    store_unchecked(home, {"address_chars.chars": "%%!",
                           "subject.lines": ["Cheap pills*", "cheap PILLS*"]})
    exported, err = _export(home, capsys)
    assert exported["address_chars.chars"] == "%%!"
    lines = err.splitlines()
    assert lines[0].startswith("mailmoat: warning: the export holds stored values this "
                               "release's rules refuse; `config import` of it refuses them")
    assert sorted(line.split(":", 1)[0] for line in lines[1:]) == ["address_chars.chars",
                                                                   "subject.lines"]

    # What it warns of is what the import of that very file refuses, into the same home.
    backup = tmp_path / "backup.json"
    backup.write_text(json.dumps(exported), "utf-8")
    assert main(["config", "import", str(backup), "--home", str(home.root)]) == 2
    assert sorted(capsys.readouterr().err.splitlines()) == sorted(lines[1:])

    assert main(["config", "set", "address_chars.chars", "%!", "--home", str(home.root)]) == 0
    assert main(["config", "set", "subject.lines", '["Cheap pills*"]',
                 "--home", str(home.root)]) == 0
    capsys.readouterr()
    assert _export(home, capsys)[1] == ""


def test_export_names_a_stored_broadcast_listen_address_the_import_refuses(tmp_path, capsys):
    """The warning read only the schema's refusals; the import of the same file into the same
    home refused the broadcast listen address all the same (review17b B4)."""
    home = make_home(tmp_path / "home")
    store_unchecked(home, {"smtp.listen": OLD_VALUES["smtp.listen"]})
    exported, err = _export(home, capsys)
    warned = err.splitlines()[1:]
    assert [line.split(":", 1)[0] for line in warned] == ["smtp.listen"]
    backup = tmp_path / "backup.json"
    backup.write_text(json.dumps(exported), "utf-8")
    assert main(["config", "import", str(backup), "--home", str(home.root)]) == 2
    # the same rule; the import's is a refused change, so it says the old value is kept
    # (upgrade20 C2: the export's list changes nothing and does not)
    assert capsys.readouterr().err.splitlines() == [line + CHANGE_REFUSED for line in warned]
