"""The connection pool at `smtp.max_outgoing` when a 4xx hands recipients on to a backup
(core/delivery/pool.py rule 2, core/delivery/deliver.py rule 1; review16b C1). The primary's
connection goes back to the pool first, and the backup's needs a token: the least recently
used idle connection is closed for it, so the one just given back only when no other is
idle. Real pool and deliverer, scripted hops on loopback named by the local DNS server.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest

from core.delivery import Deliverer
from core.delivery.mx import Resolver
from core.delivery.routing import route
from shared.events import CONNECTION_ACTUAL, CONNECTION_CACHED, CONNECTION_SUCCEEDED, Action
from shared.spool import Envelope
from tests.support.next_hop import MESSAGE, Recorder, ScriptedHop, two_mx_hosts

pytestmark = pytest.mark.trio
pytest_plugins = ["tests.support.fixtures"]

R450 = b"450 4.2.1 greylisted, try again later"
BOB, CAROL = "bob@dest.test", "carol@dest.test"
DELIVERED_AND_QUIT = ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


async def send(deliverer, settings, path, recipients):
    envelope = Envelope.new("Q1", "alice@sender.test", list(recipients))
    envelope.size = len(MESSAGE)
    hop = route(recipients[0].partition("@")[2], settings)
    return [(r.outcome, r.remote_mta) for r in
            await deliverer.deliver(hop, envelope, list(recipients), path)]


def connected(events) -> list[tuple[str, str]]:
    return [(f["data"]["host"], f["data"]["connection"]) for action, f in events.events
            if action is Action.CONNECTED_TO and f["result"] == CONNECTION_SUCCEEDED]


async def at_limit(tmp_path, nursery, dns_server, limit, other=None):
    """dest.test's mx1 greylists carol, mx2 takes everyone; `other` (a hop) is other.test's
    relay host. The settings, a deliverer kept for several messages, its events, the
    message file."""
    primary, backup = ScriptedHop(**{f"rcpt_{CAROL}": R450}), ScriptedHop()
    settings = await two_mx_hosts(nursery, dns_server, primary, backup)
    routes = list(settings["routing.local"])
    if other is not None:
        routes.append({"match": "other.test", "relay": "127.0.0.1",
                       "port": await nursery.start(other.serve)})
    settings = MappingProxyType({**settings, "smtp.max_outgoing": limit,
                                 "routing.local": routes})
    events = Recorder()
    deliverer = Deliverer(settings=lambda: settings, events=events,
                          resolver=Resolver(lambda: settings))
    path = tmp_path / "message"
    path.write_bytes(MESSAGE)
    return primary, backup, settings, deliverer, events, path


async def test_at_the_limit_the_hand_on_closes_another_idle_connection_not_the_primarys(
        tmp_path, nursery, dns_server):
    # two connections allowed: other.test's idle one and the primary's. The backup's takes
    # other.test's token; the primary's, just given back, stays for the next message.
    other = ScriptedHop()
    primary, backup, settings, deliverer, events, path = await at_limit(
        tmp_path, nursery, dns_server, 2, other)
    try:
        assert await send(deliverer, settings, path, ["bob@other.test"]) == [
            ("delivered", "127.0.0.1")]
        assert await send(deliverer, settings, path, [BOB, CAROL]) == [
            ("delivered", "mx1.dest.test"), ("delivered", "mx2.dest.test")]
        assert deliverer.pool.open_connections == 1          # the primary's, idle
        assert await send(deliverer, settings, path, [BOB]) == [
            ("delivered", "mx1.dest.test")]
    finally:
        await deliverer.aclose()
    assert other.verbs == [DELIVERED_AND_QUIT]       # closed to make room for the backup's
    # one connection for both messages (RSET before reuse only when it has idled a while)
    assert len(primary.connections) == 1 and primary.verbs[0].count("MAIL") == 2
    assert connected(events)[1:] == [("mx1.dest.test", CONNECTION_ACTUAL),
                                     ("mx2.dest.test", CONNECTION_ACTUAL),
                                     ("mx1.dest.test", CONNECTION_CACHED)]


async def test_at_a_limit_of_one_the_primarys_connection_is_closed_for_the_backups(
        tmp_path, nursery, dns_server):
    # no other connection is idle: the limit counts idle ones too, so the primary's, given
    # back, is the one closed, and the next message opens a new one
    primary, backup, settings, deliverer, events, path = await at_limit(
        tmp_path, nursery, dns_server, 1)
    try:
        assert await send(deliverer, settings, path, [BOB, CAROL]) == [
            ("delivered", "mx1.dest.test"), ("delivered", "mx2.dest.test")]
        assert deliverer.pool.open_connections == 0
        assert await send(deliverer, settings, path, [BOB]) == [
            ("delivered", "mx1.dest.test")]
    finally:
        await deliverer.aclose()
    assert primary.verbs == [["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"],
                             DELIVERED_AND_QUIT]
    assert backup.verbs == [DELIVERED_AND_QUIT]
    assert deliverer.pool.open_connections == 0
