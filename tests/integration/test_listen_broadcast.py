"""A broadcast address of one of the host's networks is refused for smtp.listen when saved
(shared/ports.py rules): the test bind passed it, as Linux lets a TCP socket bind and listen
there, and no client could ever connect (listen17 item 2).

127.255.255.255, the broadcast of the loopback's 127.0.0.0/8, is one on every Linux host. The
scenario with other networks runs in a network namespace of its own (tests/support/
namespaces.py), as `python -m tests.integration.test_listen_broadcast OUT`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.ports import address_problem, broadcast_networks
from tests.integration.test_listen_addresses import _mailmoat, _stored
from tests.support.core import make_home

LOOPBACK_BROADCAST = "127.255.255.255"


def _broadcast_rule(address: str) -> str:
    return (f"{address} is a broadcast address of this host's networks, which takes no "
            f"connections; the old value is kept")


def test_config_set_refuses_the_loopback_networks_broadcast_address(tmp_path):
    home = make_home(tmp_path / "home")
    result = _mailmoat("config", "set", "smtp.listen",
                       json.dumps(["127.0.0.1", LOOPBACK_BROADCAST]), "--home", home.root,
                       expect=2)
    assert result.stderr == f"smtp.listen: entry 2: {_broadcast_rule(LOOPBACK_BROADCAST)}\n"
    assert _stored(home, "smtp.listen") == ["127.0.0.1"]
    # the loopback's other addresses are the host's, and taken
    _mailmoat("config", "set", "smtp.listen", '["127.0.0.1", "127.255.255.254"]',
              "--home", home.root)
    assert _stored(home, "smtp.listen") == ["127.0.0.1", "127.255.255.254"]


def test_config_set_refuses_a_dns_server_at_the_loopback_networks_broadcast_address(tmp_path):
    """A query sent there gets no answer (Linux refuses the send), so every lookup of that
    server would wait out its time limit (regress17 R3)."""
    home = make_home(tmp_path / "home")
    before = _stored(home, "dns.resolvers")
    result = _mailmoat("config", "set", "dns.resolvers",
                       json.dumps(["127.0.0.1:5353", LOOPBACK_BROADCAST]), "--home", home.root,
                       expect=2)
    assert result.stderr == (
        f"dns.resolvers: entry 2: {LOOPBACK_BROADCAST} is a broadcast address of this host's "
        f"networks, which no DNS server answers from; the old value is kept\n")
    assert _stored(home, "dns.resolvers") == before
    _mailmoat("config", "set", "dns.resolvers", '["127.0.0.1:5353", "127.255.255.254"]',
              "--home", home.root)
    assert _stored(home, "dns.resolvers") == ["127.0.0.1:5353", "127.255.255.254"]


def test_only_the_local_tables_broadcast_routes_count(tmp_path):
    # /proc/net/fib_trie as a host with policy routing shows it: a BROADCAST route of
    # another table is none the local table, which bind(2) asks, has
    trie = tmp_path / "fib_trie"
    trie.write_text("Id 100:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.1.0.255\n"
                    "        /32 link BROADCAST\n"
                    "Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.2.0.0\n"
                    "        /24 link UNICAST\n     |-- 10.2.0.255\n"
                    "        /32 link BROADCAST tos=4\n"
                    "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.3.0.255\n"
                    "        /32 link BROADCAST\n")
    assert [str(n) for n in broadcast_networks(str(trie))] == ["10.2.0.255/32"]
    assert broadcast_networks(str(tmp_path / "none")) is None


@pytest.fixture(scope="module")
def facts(tmp_path_factory) -> dict:
    from tests.support.namespaces import in_own_namespaces
    return in_own_namespaces(tmp_path_factory.mktemp("broadcast"),
                             "tests.integration.test_listen_broadcast", "--net")


def test_each_networks_broadcast_address_is_refused_and_its_hosts_taken(facts):
    # 10.9.0.1/24 given without `brd`: the kernel has its broadcast route all the same;
    # 10.9.1.1/24 with brd 10.9.1.128: both that and the network's own are broadcast
    assert facts["10.9.0.255"] == _broadcast_rule("10.9.0.255")
    assert facts["10.9.1.128"] == _broadcast_rule("10.9.1.128")
    assert facts["10.9.1.255"] == _broadcast_rule("10.9.1.255")
    assert facts["10.9.0.1"] is None and facts["10.9.1.1"] is None
    # a /31 (RFC 3021) and a /32 have no broadcast address: both of a /31 are hosts'
    assert facts["10.9.2.0"] is None and facts["10.9.2.1"] is None
    assert facts["10.9.3.1"] is None


def _scenario() -> dict:
    for command in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", "10.9.0.1/24", "dev", "lo"],
                    ["ip", "addr", "add", "10.9.1.1/24", "brd", "10.9.1.128", "dev", "lo"],
                    ["ip", "addr", "add", "10.9.2.0/31", "dev", "lo"],
                    ["ip", "addr", "add", "10.9.2.1/31", "dev", "lo"],
                    ["ip", "addr", "add", "10.9.3.1/32", "dev", "lo"]):
        subprocess.run(command, check=True)
    return {address: address_problem(address) for address in (
        "10.9.0.255", "10.9.1.128", "10.9.1.255", "10.9.0.1", "10.9.1.1", "10.9.2.0",
        "10.9.2.1", "10.9.3.1")}


if __name__ == "__main__":
    Path(sys.argv[-1]).write_text(json.dumps(_scenario()))
