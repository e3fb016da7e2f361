"""The Status page and the Setup tab say which addresses of smtp.listen the running core is not
listening on, and why (shared.status `not_listening_notices`): a core left out an address
this host lacks, or one whose port another program took, and said so only in its events
and on stderr, while the Status page showed "Server and port" as if all were well.

192.0.2.1 (TEST-NET-1, RFC 5737) is never an address of this host. The slow test that makes
an address come into existence runs in a network namespace of its own (tests/support/
namespaces.py), as `python -m tests.integration.test_not_listening_notice OUT`.
"""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio
import trio.testing

from console.app import create_app
from core.app import run_core
from core.smtp.group_commit import GroupCommitter
from core.smtp.listen_sockets import Bound, ListenFailed, failed_at, open_listen_sockets
from core.smtp.server import MISSING_RETRY_SECONDS, SmtpServer
from core.status import Counters
from shared import db
from shared.clock import SYSTEM_CLOCK
from shared.events import EventWriter
from shared.settings import defaults
from shared.spool import Spool
from shared.status import new_snapshot, read_snapshot, write_snapshot
from tests.support.console import Console
from tests.support.core import CoreProcess, greets, make_home, set_settings

NOT_LOCAL = "192.0.2.1"
COMES_BACK = "10.9.0.1"         # given to the namespace's loopback by the slow scenario


def _notice(address: str, port: int) -> str:
    return (f"Not listening for SMTP on {address}:{port}, an address of smtp.listen: this "
            f"host has no such address now (Cannot assign requested address); tried again "
            f"every 10 s.")


def _not_listening(home) -> list | None:
    """The core's snapshot's smtp_not_listening, None before it wrote one."""
    conn = db.connect(home.db)
    try:
        found = read_snapshot(conn)
    finally:
        conn.close()
    return None if found is None else found[0].get("smtp_not_listening")


def _pages(console: Console) -> tuple[str, str]:
    """The Status page and the Setup tab, as an administrator sees them."""
    return (console.get("/status/").get_data(as_text=True),
            console.get("/configuration/setup").get_data(as_text=True))


def _logged_on(home) -> Console:
    # the console's clock is the wall clock the core stamps its snapshot with: the pages
    # show what a running core says, and a core that stopped says nothing
    console = Console(create_app(home, clock=SYSTEM_CLOCK, config={"TESTING": True}), home)
    assert console.logon().status_code == 302
    return console


@pytest.mark.trio
async def test_the_pages_name_an_address_the_core_lacks_until_it_is_no_longer_left_out(
        tmp_path):
    home = make_home(tmp_path)
    set_settings(home, smtp__listen=["127.0.0.1", NOT_LOCAL])   # stored before the fix
    console = await trio.to_thread.run_sync(_logged_on, home)
    try:
        async with trio.open_nursery() as nursery:
            core = await nursery.start(run_core, home)
            port = core.smtp_addresses[0][1]
            with trio.move_on_after(20):
                while not _not_listening(home):
                    await trio.sleep(0.05)
            status, setup = await trio.to_thread.run_sync(_pages, console)
            assert _notice(NOT_LOCAL, port) in status
            assert _notice(NOT_LOCAL, port) in setup

            set_settings(home, smtp__listen=["127.0.0.1"])
            with trio.fail_after(20):
                while _not_listening(home) != []:
                    await trio.sleep(0.05)
            status, setup = await trio.to_thread.run_sync(_pages, console)
            assert "Not listening" not in status and "Not listening" not in setup
            core.cancel_scope.cancel()
    finally:
        console.app.extensions["mailmoat"].close()


def test_with_listener_processes_the_pages_name_what_process_0_leaves_out(tmp_path):
    home = make_home(tmp_path, smtp__listener_processes=2)
    set_settings(home, smtp__listen=["127.0.0.1", NOT_LOCAL])
    console = _logged_on(home)
    try:
        with CoreProcess(home) as core:
            deadline = time.monotonic() + 20
            while not _not_listening(home) and time.monotonic() < deadline:
                time.sleep(0.05)
            status, setup = _pages(console)
        assert _notice(NOT_LOCAL, core.smtp_port) in status
        assert _notice(NOT_LOCAL, core.smtp_port) in setup
    finally:
        console.app.extensions["mailmoat"].close()


def test_a_core_that_stopped_leaves_no_notice(tmp_path):
    # its last snapshot may list an address; "tried again every 10 s" would be false
    home = make_home(tmp_path)
    snapshot = new_snapshot(started_at=time.time() - 120, smtp_not_listening=[
        {"address": f"{NOT_LOCAL}:25", "problem": "this host has no such address now",
         "retry_seconds": MISSING_RETRY_SECONDS}])
    conn = db.connect(home.db)
    try:
        write_snapshot(conn, snapshot, now=time.time() - 60)
    finally:
        conn.close()
    console = _logged_on(home)
    try:
        status, setup = _pages(console)
        assert "The core is not running" in status
        assert "Not listening" not in status and "Not listening" not in setup
    finally:
        console.app.extensions["mailmoat"].close()


# --- the retry, on trio's clock: what the snapshot says as an address comes back ----------

def _server(tmp_path, settings: dict, events) -> SmtpServer:
    spool = Spool(tmp_path / "spool")
    return SmtpServer(settings=lambda: settings, spool=spool, committer=GroupCommitter(spool),
                      events=events, counters=Counters(), clock=SYSTEM_CLOCK,
                      on_accepted=lambda *a: None, ssl_context=lambda: None,
                      diagnostics_dir=tmp_path, hostname=lambda: "gw.test")


@pytest.mark.trio
async def test_an_address_whose_port_is_taken_is_said_with_that_reason_until_it_is_bound(
        tmp_path, nursery, mock_clock):
    # 127.0.0.5 came back with its port held by another program (review 16 B1): the
    # snapshot says so, and says nothing once the program let it go and the retry bound it
    home = make_home(tmp_path / "home")
    events = EventWriter(home.db, "core")
    bound = open_listen_sockets(["127.0.0.1"], 0, reuse_port=False)
    port = bound.addresses[0][1]
    settings = {**defaults(), "smtp.port": port, "smtp.listen": ["127.0.0.1", "127.0.0.5"]}
    server = _server(tmp_path, settings, events)
    holder = socket.socket()
    holder.bind(("127.0.0.5", port))
    holder.listen()
    try:
        await nursery.start(server.serve_on, Bound(bound.sockets, [
            failed_at("127.0.0.5", port, errno.EADDRNOTAVAIL, "Cannot assign requested "
                                                               "address")]))
        assert server.not_listening() == [
            {"address": f"127.0.0.5:{port}", "problem": "this host has no such address now "
             "(Cannot assign requested address)", "retry_seconds": MISSING_RETRY_SECONDS}]
        mock_clock.jump(MISSING_RETRY_SECONDS)
        await trio.testing.wait_all_tasks_blocked()
        assert server.not_listening() == [
            {"address": f"127.0.0.5:{port}", "problem": "Address already in use",
             "retry_seconds": MISSING_RETRY_SECONDS}]
    finally:
        holder.close()
    mock_clock.jump(MISSING_RETRY_SECONDS)
    await trio.testing.wait_all_tasks_blocked()
    assert server.bound == [("127.0.0.1", port), ("127.0.0.5", port)]
    assert server.not_listening() == []
    events.close()


def test_a_listen_failure_without_its_parts_still_says_the_address():
    # a ListenFailed made from a message alone (a listener process's "failed" line)
    failed = ListenFailed("cannot listen for SMTP on 192.0.2.1:25 (Cannot assign requested "
                          "address)", errno.EADDRNOTAVAIL, NOT_LOCAL)
    assert (failed.address, failed.problem) == (NOT_LOCAL, "this host has no such address now")


# --- the address comes back (slow: the core's 10 s retry, in a namespace of its own) -------

@pytest.mark.slow
def test_the_notice_goes_when_the_address_can_be_bound_again(tmp_path):
    from tests.support.namespaces import in_own_namespaces
    facts = in_own_namespaces(tmp_path, "tests.integration.test_not_listening_notice",
                              "--net")
    notice = _notice(COMES_BACK, facts["port"])
    assert facts["before"] == [True, True, False]       # Status, Setup, greets
    assert notice in facts["status_before"]
    assert facts["after"] == [False, False, True]


def _scenario(work: Path) -> dict:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    home = make_home(work / "home")
    set_settings(home, smtp__listen=["127.0.0.1", COMES_BACK])
    console = _logged_on(home)
    facts: dict = {}
    try:
        with CoreProcess(home) as core:
            port = facts["port"] = core.smtp_port
            deadline = time.monotonic() + 20
            while not _not_listening(home) and time.monotonic() < deadline:
                time.sleep(0.05)
            status, setup = _pages(console)
            notice = _notice(COMES_BACK, port)
            facts["status_before"] = status
            facts["before"] = [notice in status, notice in setup, greets(COMES_BACK, port)]
            subprocess.run(["ip", "addr", "add", f"{COMES_BACK}/32", "dev", "lo"], check=True)
            deadline = time.monotonic() + 60
            while (_not_listening(home) or not greets(COMES_BACK, port)) \
                    and time.monotonic() < deadline:
                time.sleep(0.2)
            status, setup = _pages(console)
            facts["after"] = ["Not listening" in status, "Not listening" in setup,
                              greets(COMES_BACK, port)]
    finally:
        console.app.extensions["mailmoat"].close()
    return facts


if __name__ == "__main__":
    import tempfile
    out = Path(sys.argv[-1])
    with tempfile.TemporaryDirectory() as work:
        out.write_text(json.dumps(_scenario(Path(work))))
