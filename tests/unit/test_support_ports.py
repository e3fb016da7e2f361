"""The test support's port picker (tests/support/core.py `free_ports`): the ports it picks for a
core to bind later are ones the kernel never hands another socket meanwhile — a port picked by
binding port 0 and closed could be taken by an outgoing connection or another test's port-0
socket before the core bound it (EADDRINUSE at a core's start, session 22's flakes)."""

from __future__ import annotations

import socket

from tests.support import core


def test_picked_ports_are_below_the_ephemeral_range_and_free():
    ports = core.free_ports(5)
    assert len(set(ports)) == 5
    assert all(port < core._ephemeral_start() for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_each_xdist_worker_picks_from_a_block_of_its_own(monkeypatch):
    blocks = []
    for worker in ("gw0", "gw1", "gw5"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        blocks.append(core._worker_block())
        assert all(port in blocks[-1] for port in core.free_ports(2))
    assert len({block.start for block in blocks}) == 3
    assert all(set(a).isdisjoint(b) for a in blocks for b in blocks if a is not b)
