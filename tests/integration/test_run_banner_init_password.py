"""The logon line of `mailmoat run` is true of a home `mailmoat init --admin-password X`
made, where init printed no password.

Regression test for certs17 finding C10: the line said "`mailmoat init` printed the first
one" whatever init had done; given --admin-password, init prints none.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared import db
from shared.paths import DataHome
from shared.settings_store import apply_changes
from tests.support.core import free_ports, run_banner

# a second or two of `mailmoat run`: run by `make test-slow` (pyproject.toml, marker "slow")
pytestmark = pytest.mark.slow


def _init(home: DataHome, *options: str) -> str:
    """`mailmoat init` with `options`, as an administrator types it; its output. The home
    then listens on free loopback ports, so that its run disturbs nobody."""
    done = subprocess.run([sys.executable, "-m", "shared.cli", "init", "--home",
                           str(home.root), *options], capture_output=True, text=True,
                          check=True)
    smtp_port, http_port, https_port = free_ports(3)
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {"smtp.port": smtp_port, "smtp.listen": ["127.0.0.1"],
                             "http.port": http_port, "https.port": https_port})
    finally:
        conn.close()
    return done.stdout


def _logon_line(banner: str) -> str:
    [line] = [line for line in banner.splitlines() if line.startswith("Log on as")]
    return line


def test_the_logon_line_names_the_password_given_to_init(tmp_path):
    home = DataHome(tmp_path / "home")
    printed = _init(home, "--admin-password", "Given-pass1")
    assert "Administrator password set." in printed and "shown once" not in printed
    line = _logon_line(run_banner(home, []))
    assert "the one given to it with --admin-password" in line, line
    assert "with the password that `mailmoat init` printed" not in line
    assert "(`mailmoat init` printed the first one" not in line


def test_the_logon_line_names_the_password_init_printed(tmp_path):
    home = DataHome(tmp_path / "home")
    assert "Administrator password (shown once" in _init(home)
    line = _logon_line(run_banner(home, []))
    assert line.startswith("Log on as 'admin' with its password: the one `mailmoat init` "
                           "printed"), line
