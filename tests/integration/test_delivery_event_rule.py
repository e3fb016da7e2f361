"""Delivery events name the routing rule that chose the next hop (SPEC §5: every decision
names the rule that fired; core/delivery/routing.py): `routing.local:<match>` for a local
route, `routing.default` for every other, MX delivery (what a null routing.default means)
included. outbound19 finding C4: MX deliveries' `delivered` / `deferred` /
`delivery_failed` events had an empty rule, so a report could not filter on them.

The queue manager of tests/integration/test_queue.py with the local DNS server: the MX
domain does not exist (NXDOMAIN fails it at once, 5.1.2), the local one goes to the sink.
"""

from __future__ import annotations

from shared.events import Action
from tests.integration.test_queue import Harness, routes_to


async def test_an_mx_delivery_names_routing_default(tmp_path, sink, dns_server, nursery):
    h = Harness(tmp_path, routes_to(("corp.test", sink)),
                **{"dns.resolvers": [dns_server.resolver]})
    manager = h.manager()
    await nursery.start(manager.run)
    manager.message_accepted(h.put("alice@corp.test", ["bob@nowhere.test", "carol@corp.test"]))
    await h.until(lambda: h.events.of(Action.DELIVERY_FAILED) and h.events.of(Action.DELIVERED))
    [failed] = h.events.of(Action.DELIVERY_FAILED)
    assert (failed["recipients"], failed["rule"]) == (["bob@nowhere.test"], "routing.default")
    assert failed["data"]["next_hop"] == "mx:nowhere.test:25"
    [delivered] = h.events.of(Action.DELIVERED)
    assert delivered["rule"] == "routing.local:corp.test"
