"""`mailmoat config set KEY VALUE` with a VALUE starting with "-" (settings findings 16,
section 7: `config set heuristic.subject_prefix -SPAM-` was argparse's "unrecognized
arguments", exit 2): the value is set, wherever --home stands; a VALUE starting with "--"
goes after "--", as docs/settings.md says."""

import os
import subprocess
import sys

import pytest

from shared import cli, db
from shared.settings_store import load


def stored(home, key):
    conn = db.connect(home.db)
    try:
        return load(conn)[key]
    finally:
        conn.close()


@pytest.mark.parametrize("args, value", [
    (["heuristic.subject_prefix", "-SPAM-", "--home", "{home}"], "-SPAM-"),
    (["--home", "{home}", "heuristic.subject_prefix", "-SPAM-"], "-SPAM-"),
    (["heuristic.subject_prefix", "--home", "{home}", "-hot-"], "-hot-"),
    (["heuristic.subject_prefix", "--home={home}", "-"], "-"),
    (["heuristic.subject_prefix", "--home", "{home}", "--", "--SPAM--"], "--SPAM--"),
    (["premium.spam.subject_prefix", "-h-", "--home", "{home}"], "-h-"),
    (["heuristic.subject_prefix", "--hom", "{home}", "-SPAM-"], "-SPAM-"),  # abbreviated
    # only --home and --help are options: other text starting with -- is the value (review17
    # B2: "-- SPAM --" was taken for an option, and argparse made it the KEY)
    (["heuristic.subject_prefix", "-- SPAM --", "--home", "{home}"], "-- SPAM --"),
    (["heuristic.subject_prefix", "--SPAM--", "--home", "{home}"], "--SPAM--"),
    (["heuristic.subject_prefix", "--home", "{home}", "--", "--home"], "--home"),
])
def test_a_value_starting_with_a_dash_is_set(home, capsys, args, value):
    key = args[0] if not args[0].startswith("--") else args[2]
    argv = ["config", "set", *(arg.format(home=home.root) for arg in args)]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == f"{key} set\n"
    assert stored(home, key) == value


def test_a_negative_number_reaches_the_rule_of_its_key(home, capsys):
    assert cli.main(["config", "set", "smtp.port", "-25", "--home", str(home.root)]) == 2
    assert capsys.readouterr().err == "smtp.port: must be between 1 and 65535\n"


def test_the_mailmoat_program_sets_it_too(home):
    environ = {k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"}
    result = subprocess.run([sys.executable, "-m", "shared.cli", "config", "set",
                             "heuristic.subject_prefix", "-SPAM-", "--home", str(home.root)],
                            capture_output=True, text=True, env=environ, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "heuristic.subject_prefix set\n", "")
    assert stored(home, "heuristic.subject_prefix") == "-SPAM-"


def test_another_command_is_parsed_as_before(home, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["config", "get", "-x", "--home", str(home.root)])
    assert info.value.code == 2
    assert "unrecognized arguments: -x" in capsys.readouterr().err
