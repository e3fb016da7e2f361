"""A broadcast address of the host's networks in a stored smtp.listen (an older release let it
in): the core never listens there, as for an address the host lacks, and says so on the
Status page and the Setup tab; a change that keeps it is refused (upgrade17 B1).

127.255.255.255, the broadcast of the loopback's 127.0.0.0/8, is one on every Linux host.
Linux lets a TCP socket listen there, and no client can connect: a core bound only there took
no mail, with nothing said.
"""

from __future__ import annotations

import json

import pytest
import trio

from console.app import create_app
from core.app import run_core
from core.smtp.listen_sockets import ListenFailed, open_listen_sockets
from shared import db
from shared.clock import SYSTEM_CLOCK
from shared.events import Action
from shared.status import read_snapshot
from tests.integration.test_listen_addresses import _mailmoat, _stored
from tests.support.console import Console
from tests.support.core import greets, make_home, store_unchecked
from tests.support.waiting import events_of, until

BROADCAST = "127.255.255.255"


def _listening_on(address: str) -> bool:
    """Whether a TCP socket of this host listens on `address` (IPv4), any port, from the
    kernel's table."""
    hexed = "".join(f"{int(part):02X}" for part in reversed(address.split(".")))
    with open("/proc/net/tcp", encoding="ascii") as table:
        return any(line.split()[1].startswith(hexed + ":") and line.split()[3] == "0A"
                   for line in list(table)[1:])


def _failures(home):
    return [(e["rule"], e["info"]) for e in events_of(home, Action.SERVICE_START_FAILED)]


def _not_listening(home) -> list | None:
    conn = db.connect(home.db)
    try:
        found = read_snapshot(conn)
    finally:
        conn.close()
    return None if found is None else found[0].get("smtp_not_listening")


def _pages(home) -> tuple[str, str]:
    console = Console(create_app(home, clock=SYSTEM_CLOCK, config={"TESTING": True}), home)
    try:
        assert console.logon().status_code == 302
        return (console.get("/status/").get_data(as_text=True),
                console.get("/configuration/setup").get_data(as_text=True))
    finally:
        console.app.extensions["mailmoat"].close()


@pytest.mark.trio
async def test_a_stored_broadcast_address_is_left_out_and_named_on_the_pages(tmp_path, capfd):
    home = make_home(tmp_path)
    port = _stored(home, "smtp.port")
    store_unchecked(home, {"smtp.listen": ["127.0.0.1", BROADCAST]})
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        assert core.smtp_addresses == [("127.0.0.1", port)]
        assert not _listening_on(BROADCAST)
        assert await trio.to_thread.run_sync(greets, "127.0.0.1", port)
        await until(lambda: _failures(home), flush=core.events.aflush)
        with trio.fail_after(20):
            while not _not_listening(home):
                await trio.sleep(0.05)
        status, setup = await trio.to_thread.run_sync(_pages, home)
        notice = (f"Not listening for SMTP on {BROADCAST}:{port}, an address of smtp.listen: "
                  f"a broadcast address of this host&#39;s networks; tried again every 10 s.")
        assert notice in status and notice in setup

        # a live change to it alone cannot be bound: the listener stays where it was
        store_unchecked(home, {"smtp.listen": [BROADCAST]})
        await until(lambda: len(_failures(home)) == 2, flush=core.events.aflush)
        assert core.server.bound == [("127.0.0.1", port)]
        assert not _listening_on(BROADCAST)
        assert await trio.to_thread.run_sync(greets, "127.0.0.1", port)
        core.cancel_scope.cancel()
    message = (f"cannot listen for SMTP on {BROADCAST}:{port} (a broadcast address of this "
               f"host's networks): listening on 127.0.0.1:{port} without it, and trying it "
               f"again every 10 s")
    assert _failures(home)[0] == ("smtp.listen", message)
    assert _failures(home)[1] == (
        "smtp.listen", f"cannot listen for SMTP on {BROADCAST}:{port} (a broadcast address of "
                       f"this host's networks); still listening on 127.0.0.1:{port} until "
                       f"smtp.port or smtp.listen changes")
    assert f"mailmoat core: {message}\n" in capfd.readouterr().err


@pytest.mark.slow        # a core process that cannot start
def test_a_core_whose_only_address_is_a_broadcast_one_does_not_start(tmp_path):
    home = make_home(tmp_path)
    port = _stored(home, "smtp.port")
    store_unchecked(home, {"smtp.listen": [BROADCAST]})
    result = _mailmoat("core", "--home", home.root, expect=1)
    assert result.stderr == (f"mailmoat: cannot listen for SMTP on {BROADCAST}:{port} (a "
                             f"broadcast address of this host's networks)\n")
    assert [rule for rule, _info in _failures(home)] == ["smtp.listen"]


@pytest.mark.slow        # the CLI as a subprocess
def test_a_change_that_keeps_a_stored_broadcast_address_is_refused(tmp_path):
    home = make_home(tmp_path)
    store_unchecked(home, {"smtp.listen": ["127.0.0.1", BROADCAST]})
    result = _mailmoat("config", "set", "smtp.listen", json.dumps([BROADCAST]),
                       "--home", home.root, expect=2)
    assert result.stderr == (f"smtp.listen: entry 1: {BROADCAST} is a broadcast address of "
                             f"this host's networks, which takes no connections; the old "
                             f"value is kept\n")
    assert _stored(home, "smtp.listen") == ["127.0.0.1", BROADCAST]
    # other settings still change; dropping the address corrects it
    _mailmoat("config", "set", "smtp.max_incoming", "40", "--home", home.root)
    _mailmoat("config", "set", "smtp.listen", '["127.0.0.1"]', "--home", home.root)
    assert _stored(home, "smtp.listen") == ["127.0.0.1"]


def test_open_listen_sockets_leaves_a_broadcast_address_out_before_binding():
    with pytest.raises(ListenFailed) as failed:
        open_listen_sockets([BROADCAST], 0, reuse_port=False)
    assert failed.value.rule == "smtp.listen"
    assert failed.value.problem == "a broadcast address of this host's networks"
    bound = open_listen_sockets(["127.0.0.1", BROADCAST], 0, reuse_port=False)
    try:
        assert [exc.host for exc in bound.missing] == [BROADCAST]
        assert not _listening_on(BROADCAST)
    finally:
        for sock in bound.sockets:
            sock.close()
