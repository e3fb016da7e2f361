"""An MX record whose target is written as an IP address ("MX 10 127.0.0.3.") names a host
like any other (core/delivery/mx.py rule 1; RFC 5321 §5.1, RFC 2181 §10.3): it is looked up
as a name, does not resolve, and that host is unusable. Before, the address was connected to
as it was. The local DNS server answers NXDOMAIN for the name, as the root does; a scripted
hop listens at the address, so a connection there would be seen.
"""

from __future__ import annotations

import pytest

from core.delivery.routing import route
from tests.support.next_hop import ScriptedHop, deliver, snapshot

pytestmark = pytest.mark.trio
pytest_plugins = ["tests.support.fixtures"]

BOB = "bob@dest.test"


async def test_an_mx_target_written_as_an_address_is_no_host_and_the_mail_fails(
        tmp_path, nursery, dns_server):
    at_the_address = ScriptedHop()
    port = await nursery.start(at_the_address.serve, "127.0.0.3")
    dns_server.add_mx("dest.test", 10, "127.0.0.3.")
    settings = snapshot(dns_server, routing__local=[{"match": "dest.test", "port": port}])
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings), [BOB])
    assert (result.outcome, result.status, result.text) == (
        "failed", "5.4.4", "no MX host of dest.test has an address")
    assert at_the_address.connections == []
    assert ("127.0.0.3", "A") in dns_server.queries       # looked up as a name


async def test_an_mx_target_written_as_an_address_leaves_the_named_hosts(
        tmp_path, nursery, dns_server):
    at_the_address, backup = ScriptedHop(), ScriptedHop()
    port = await nursery.start(backup.serve)
    await nursery.start(at_the_address.serve, "127.0.0.3", port)
    dns_server.add_mx("dest.test", 10, "127.0.0.3.").add_mx("dest.test", 20, "mx2.dest.test")
    dns_server.add_a("mx2.dest.test", "127.0.0.1")
    settings = snapshot(dns_server, routing__local=[{"match": "dest.test", "port": port}])
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings), [BOB])
    assert (result.outcome, result.remote_mta) == ("delivered", "mx2.dest.test")
    assert at_the_address.connections == [] and len(backup.messages) == 1


async def test_an_address_target_that_does_resolve_as_a_name_goes_to_its_address(
        tmp_path, nursery, dns_server):
    # a name is a name: a zone that gives "127.0.0.3" an A record sends the mail there
    hop = ScriptedHop()
    port = await nursery.start(hop.serve)
    dns_server.add_mx("dest.test", 10, "127.0.0.3.").add_a("127.0.0.3", "127.0.0.1")
    settings = snapshot(dns_server, routing__local=[{"match": "dest.test", "port": port}])
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings), [BOB])
    assert result.outcome == "delivered" and len(hop.messages) == 1
