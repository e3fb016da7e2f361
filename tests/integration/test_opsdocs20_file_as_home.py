"""A file given as the data home: every command says `cannot use PATH (Not a directory)`, as
`init` does (opsdocs20 C3: `config get`, `queue list`, `run` and `core` said "no Mailmoat data
home at PATH; run `mailmoat init` first", and that init then refused the path). The CLI as a
subprocess, as an administrator runs it."""

from __future__ import annotations

import pytest

from tests.integration.test_cli import mailmoat

COMMANDS = [["init", "--admin-password", "Admin-Pass-1"], ["config", "get"],
            ["config", "get", "smtp.port"], ["config", "set", "smtp.port", "2525"],
            ["queue", "list"], ["queue", "drop", "--hold", "--no-wait"],
            ["report", "summary"], ["migrate"], ["run"], ["core"], ["console"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("below", [False, True], ids=["file", "path-below-a-file"])
def test_a_file_as_the_data_home_is_named_as_not_a_directory(tmp_path, command, below):
    afile = tmp_path / "afile"
    afile.write_text("")
    home = afile / "sub" if below else afile
    result = mailmoat(*command, "--home", home, expect=1)
    assert result.stderr == f"mailmoat: cannot use {home} (Not a directory)\n"
    assert afile.read_text() == ""
