"""antispam21 C4: the refusal at MAIL FROM of a client a real-time blacklist lists names that
list, as Postfix's "blocked using zen.example" does, so the sender's postmaster knows whom to
ask for delisting. Before, every listing got "550 5.7.1 Client host rejected: listed in a
real-time blacklist", whichever of up to three zones listed the client."""

from __future__ import annotations

import pytest
import trio

from core.app import run_core
from core.smtp.rbl import query_name
from shared.events import Action
from tests.integration.test_antispam_rbl import _home, _mail_from
from tests.support.dnsserver import DnsServer
from tests.support.waiting import events_of, until


@pytest.fixture
def dns():
    with DnsServer() as server:
        yield server


async def test_the_reject_reply_names_the_zone_that_lists_the_client(tmp_path, sink, dns,
                                                                      nursery):
    dns.add_a(query_name("127.0.0.1", "second.test"), "127.0.0.2")     # first.test: NXDOMAIN
    home = _home(tmp_path, sink, dns, rbl__action="reject", rbl__zones=[
        {"enabled": True, "zone": "first.test", "return_codes": []},
        {"enabled": True, "zone": "second.test", "return_codes": []}])
    core = await nursery.start(run_core, home)
    code, text = await trio.to_thread.run_sync(_mail_from, core.smtp_addresses[0][1],
                                               "spammer@elsewhere.test")
    assert code == 550
    assert text == b"5.7.1 Client host [127.0.0.1] blocked using second.test"
    # the event names the same zone
    [rejected] = await until(lambda: events_of(home, Action.REJECTED),
                             flush=core.events.aflush)
    assert rejected["rule"] == "rbl.zones second.test"
    core.cancel_scope.cancel()
