"""A 5xx greeting refuses no recipient (core/delivery/deliver.py rule 1, session.py rule 6):
the next address is tried and the recipient is deferred at worst, as Postfix's
smtp_skip_5xx_greeting (default yes) has it; a 5xx to EHLO and then HELO is the refusal
(review16b C5 read rule 1 as letting a sibling's 554 greeting bounce a recipient that the
first address greylisted). Scripted hops on loopback named by the local DNS server.
"""

from __future__ import annotations

import pytest

from core.delivery.routing import route
from tests.support.next_hop import ScriptedHop, deliver, snapshot

pytestmark = pytest.mark.trio
pytest_plugins = ["tests.support.fixtures"]

R450 = b"450 4.2.1 greylisted, try again later"
R554 = b"554 5.3.2 node in maintenance"
BOB, CAROL = "bob@dest.test", "carol@dest.test"


async def two_servers(nursery, dns_server, first, second, layout):
    """dest.test's first server at 127.0.0.3, its second at 127.0.0.1 (one port):
    "addresses" one MX host with both, "equal" two MX hosts of preference 10, "backup"
    mx1 (10) and mx2 (20). The settings."""
    port = await nursery.start(second.serve)
    await nursery.start(first.serve, "127.0.0.3", port)
    if layout == "addresses":
        dns_server.add_mx("dest.test", 10, "mx.dest.test")
        dns_server.add_a("mx.dest.test", "127.0.0.3").add_a("mx.dest.test", "127.0.0.1")
    else:
        dns_server.add_mx("dest.test", 10, "mx1.dest.test")
        dns_server.add_mx("dest.test", 10 if layout == "equal" else 20, "mx2.dest.test")
        dns_server.add_a("mx1.dest.test", "127.0.0.3").add_a("mx2.dest.test", "127.0.0.1")
    return snapshot(dns_server, routing__local=[{"match": "dest.test", "port": port}])


@pytest.mark.parametrize("layout", ["addresses", "equal"])
async def test_a_554_greeting_after_a_siblings_4xx_leaves_the_4xx(tmp_path, nursery,
                                                                  dns_server, layout):
    # the greylisting address comes first (equal hosts: either first, the same outcome);
    # the other greets 554, and carol waits for the retry rather than bounce
    first, second = ScriptedHop(**{f"rcpt_{CAROL}": R450}), ScriptedHop(greeting=R554)
    settings = await two_servers(nursery, dns_server, first, second, layout)
    results, _ = await deliver(tmp_path, settings, route("dest.test", settings), [BOB, CAROL])
    bob, carol = results
    assert bob.outcome == "delivered"
    assert (carol.outcome, carol.text, carol.status) == ("deferred", R450.decode(), "4.2.1")
    assert second.messages == []


async def test_a_primary_greeting_554_keeps_a_backups_5xx_from_failing_the_recipients(
        tmp_path, nursery, dns_server):
    first = ScriptedHop(greeting=R554)
    second = ScriptedHop(rcpt=b"550 5.7.1 relay access denied")
    settings = await two_servers(nursery, dns_server, first, second, "backup")
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings), [BOB])
    assert result.outcome == "deferred" and result.status == "4.4.1"
    assert result.text.startswith("mx1.dest.test[127.0.0.3]:")
    assert " greeted with 554 5.3.2 node in maintenance (then mx2.dest.test answered 550 " \
        in result.full_text


async def test_the_only_host_greeting_554_defers(tmp_path, nursery, dns_server):
    hop = ScriptedHop(greeting=R554)
    port = await nursery.start(hop.serve)
    dns_server.add_mx("dest.test", 10, "mx.dest.test").add_a("mx.dest.test", "127.0.0.1")
    settings = snapshot(dns_server, routing__local=[{"match": "dest.test", "port": port}])
    [result], _ = await deliver(tmp_path, settings, route("dest.test", settings), [BOB])
    assert (result.outcome, result.status) == ("deferred", "4.4.1")
    assert "greeted with 554 5.3.2 node in maintenance" in result.text
