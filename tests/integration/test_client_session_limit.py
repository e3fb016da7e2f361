"""One client's share of the SMTP sessions with listener processes (core/smtp/server.py
rules, core/smtp/client_sessions.py): half of smtp.max_incoming, counted in every process,
so a client has its whole share wherever the kernel puts its connections, and no more.

The host itself is never limited, so the scenario runs in a network namespace of its own
(tests/support/namespaces.py in_own_namespaces) whose loopback device has the addresses of
a gateway and two other hosts: a real core with two listener processes, and clients that
hold raw sockets open (idle sessions), as the host that took every slot did."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.support.namespaces import in_own_namespaces

GATEWAY, CLIENT, OTHER = "10.9.0.1", "10.9.0.2", "10.9.0.3"
TOO_MANY = b"421 4.7.0 Too many connections from your host\r\n"


@pytest.fixture(scope="module")
def facts(tmp_path_factory) -> dict:
    return in_own_namespaces(tmp_path_factory.mktemp("client-limit"),
                             "tests.integration.test_client_session_limit", "--net")


def test_a_client_has_half_the_sessions_of_all_listener_processes(facts):
    # 8 sessions over 2 processes (4 each), 4 for a client: the 4 are served wherever they
    # land (a limit of each process's half, 2, refused one of them 5 times in 8), the 5th
    # is refused whichever process takes it
    assert facts["first_four"] == ["220"] * 4
    assert facts["fifth"] == TOO_MANY.decode()
    assert facts["rejected"] == [["smtp.max_incoming", CLIENT]]


def test_the_refused_connection_is_a_failed_connection_from(facts):
    # guide Table 7-6: "Connection from … the result of the connection (Succeeded/Failed)"
    [[rule, client, connection]] = facts["failed_connections"]
    assert (rule, client) == ("smtp.max_incoming", CLIENT)
    assert facts["rejected_connections"] == [connection]


def test_another_host_is_served_while_one_holds_its_share(facts):
    assert facts["other"] == "220"


def test_a_session_that_ends_frees_its_place_whichever_process_served_it(facts):
    assert facts["after_close"] == "220"


async def _first_reply(source: str, port: int, held: list) -> bytes:
    stream = await trio.open_tcp_stream(GATEWAY, port, local_address=source)
    held.append(stream)                 # open until the scenario ends: an idle session
    with trio.fail_after(10):
        return await stream.receive_some(512)


async def _served(source: str, port: int, held: list) -> bytes:
    """The first reply of a new session that a listener process takes up. The kernel puts a
    connection in one process's queue (SO_REUSEPORT, by a hash of its addresses and ports);
    one whose slots the first client's sessions all hold makes it wait for a slot, as SPEC §4
    has it ("more wait rather than being refused"): that wait is the process's, not a
    refusal, so a connection that waits is given up and another made, from another port."""
    for _ in range(40):
        stream = await trio.open_tcp_stream(GATEWAY, port, local_address=source)
        with trio.move_on_after(1):
            reply = await stream.receive_some(512)
            held.append(stream)
            return reply
        await stream.aclose()
    raise AssertionError(f"no listener process took a session from {source}")


async def _scenario(home_dir: Path) -> dict:
    from core.app import run_core
    from shared.events import Action
    from tests.support.core import make_home
    from tests.support.waiting import events_of, until

    facts: dict = {}
    home = make_home(home_dir, smtp__listener_processes=2, smtp__max_incoming=8,
                     smtp__listen=[GATEWAY])
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        port = core.smtp_addresses[0][1]
        held: list = []
        facts["first_four"] = [(await _first_reply(CLIENT, port, held))[:3].decode()
                               for _ in range(4)]
        facts["fifth"] = (await _first_reply(CLIENT, port, held)).decode()
        facts["other"] = (await _served(OTHER, port, held))[:3].decode()
        await until(lambda: events_of(home, Action.REJECTED))
        facts["rejected"] = [[row["rule"], row["client_ip"]]
                             for row in events_of(home, Action.REJECTED)]
        # written before the rejected event by the same process: committed with it
        facts["failed_connections"] = [
            [row["rule"], row["client_ip"], row["connection_id"]]
            for row in events_of(home, Action.CONNECTION_FROM) if row["result"] == "failed"]
        facts["rejected_connections"] = [row["connection_id"]
                                         for row in events_of(home, Action.REJECTED)]
        await held[0].aclose()
        with trio.fail_after(20):
            while (reply := await _served(CLIENT, port, held)) == TOO_MANY:
                await trio.sleep(0.05)
        facts["after_close"] = reply[:3].decode()
        for stream in held:
            await stream.aclose()
        core.cancel_scope.cancel()
    return facts


def _addresses() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for address in (GATEWAY, CLIENT, OTHER):
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)


if __name__ == "__main__":
    import tempfile
    _addresses()
    with tempfile.TemporaryDirectory() as work:
        result = trio.run(_scenario, Path(work) / "home")
    Path(sys.argv[1]).write_text(json.dumps(result))
