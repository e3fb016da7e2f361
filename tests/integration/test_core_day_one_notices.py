"""What the core says at start, and reports, of settings a new administrator must hear about
(tester dayone17): an open relay (relay.mode allow, finding 1), and the name it greets with
when smtp.hostname is empty (finding 2: the banner said `vm`, the Status page `localhost`,
and nothing said that receivers may refuse EHLO vm)."""

from __future__ import annotations

import socket

import trio

from core.app import run_core
from shared import db
from shared.home import hostname_notice, machine_hostname
from shared.settings import OPEN_RELAY_WARNING
from shared.status import read_snapshot
from tests.support.core import make_home


def _banner_name(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        greeting = sock.recv(512).decode()
    assert greeting.startswith("220 "), greeting
    return greeting.split()[1]


def _snapshot_hostname(home) -> str:
    conn = db.connect(home.db)
    try:
        return read_snapshot(conn)[0]["hostname"]
    finally:
        conn.close()


async def test_the_core_says_at_start_that_relay_mode_allow_is_an_open_relay(
        tmp_path, nursery, capfd):
    core = await nursery.start(run_core, make_home(tmp_path / "open", relay__mode="allow"))
    core.cancel_scope.cancel()
    await trio.sleep(0)
    assert f"mailmoat core: {OPEN_RELAY_WARNING}\n" in capfd.readouterr().err


async def test_the_core_says_nothing_of_relaying_under_deny_except(tmp_path, nursery, capfd):
    core = await nursery.start(run_core, make_home(tmp_path / "closed"))
    core.cancel_scope.cancel()
    await trio.sleep(0)
    assert OPEN_RELAY_WARNING not in capfd.readouterr().err


async def test_status_names_the_gateway_as_its_banner_does_and_the_start_says_if_unqualified(
        tmp_path, nursery, capfd):
    home = make_home(tmp_path / "home", smtp__hostname=None)
    core = await nursery.start(run_core, home)
    try:
        port = core.smtp_addresses[0][1]
        banner = await trio.to_thread.run_sync(_banner_name, port)
        assert banner == machine_hostname()
        # the name the Status page shows as "Server and port" (it was getfqdn's own)
        assert _snapshot_hostname(home) == banner
    finally:
        core.cancel_scope.cancel()
    await trio.sleep(0)
    err = capfd.readouterr().err
    notice = hostname_notice({"smtp.hostname": None}, banner)
    if notice is None:      # this machine has a fully qualified name: nothing to say
        assert "smtp.hostname is empty" not in err
    else:
        assert f"mailmoat core: {notice}\n" in err


async def test_the_start_says_nothing_of_the_name_when_smtp_hostname_is_set(
        tmp_path, nursery, capfd):
    core = await nursery.start(run_core, make_home(tmp_path / "named"))   # mailmoat.test
    core.cancel_scope.cancel()
    await trio.sleep(0)
    assert "smtp.hostname is empty" not in capfd.readouterr().err
