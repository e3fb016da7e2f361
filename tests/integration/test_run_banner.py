"""What `mailmoat run` says when it starts (tester dayone17, findings 6 and 7).

- Finding 6: `mailmoat init` makes a home with smtp.port 25 (SPEC's default); `make run` as
  root then runs it as the `mailmoat` user, whose core cannot listen there and was restarted
  for ever while the banner said only "SMTP: port 25". The banner now says the core will not
  start and what to do.
- Finding 7: the banner named "the password that `mailmoat init` printed" at every start,
  also after the password was changed in the console.

The process runs as root without CAP_NET_BIND_SERVICE (setpriv's bounding set), which is
what the banner asks about; the core's SMTP is on loopback only, so nothing leaves the host.
"""

from __future__ import annotations

import os
import shutil

import pytest

from shared.ports import privileged_port_start
from tests.support.core import make_home, run_banner

# a second or two of `mailmoat run`: run by `make test-slow` (pyproject.toml, marker "slow")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to drop CAP_NET_BIND_SERVICE with setpriv")]


def test_banner_says_the_core_cannot_listen_on_a_port_this_user_may_not_bind(tmp_path):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (Debian: util-linux)")
    if privileged_port_start() <= 25:
        pytest.skip("port 25 is unprivileged on this host (net.ipv4.ip_unprivileged_port_start)")
    home = make_home(tmp_path / "home", smtp__port=25)
    banner = run_banner(home, [setpriv, "--bounding-set=-net_bind_service", "--"])
    assert "SMTP: port 25, which this user may not listen on" in banner, banner
    assert "the core will not start" in banner and \
        "mailmoat config set smtp.port 2525" in banner, banner
    # finding 7: true whether or not the password was changed since init printed it
    assert "the password that `mailmoat init` printed" not in banner, banner
    assert "Log on as 'admin' with its password: the one `mailmoat init` printed" \
        in banner, banner


def test_banner_says_only_the_port_when_this_user_may_bind_it(tmp_path):
    home = make_home(tmp_path / "home")
    banner = run_banner(home)
    assert "SMTP: port " in banner and "may not listen" not in banner, banner
