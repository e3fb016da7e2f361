"""A chain certificate (an intermediate) served after the leaf in cert.pem that is out of its
dates is said as an expired leaf is: an event and a line on stderr from the core, the dates
notice on Certificate Management and a mark on the Status page, naming which one (upgrade17
B2: an older release's install took an expired intermediate, and a CA's intermediate may
expire before the leaf; STARTTLS and HTTPS served it with no word, and clients that check
refuse it).

Real certificates (root, intermediate, a leaf for tls/key.pem); the core in process with a
fake wall clock that passes the intermediate's expiry; the console's pages through its app.
"""

from __future__ import annotations

import datetime as dt
import html

import pytest

from console.app import create_app
from shared.clock import SYSTEM_CLOCK, FakeClock
from shared.events import Action
from tests.support.certificates import (INTERMEDIATE, chain_into_tls,
                                        reported_once_when_it_expires)
from tests.support.console import Console
from tests.support.core import make_home
from tests.support.waiting import events_of


def _dates_events(home) -> list[str]:
    return [row["info"] for row in events_of(home, Action.SERVICE_START_FAILED)
            if "the chain certificate" in (row["info"] or "")]


@pytest.mark.slow       # a core run past a certificate's expiry (~6 s)
@pytest.mark.trio
async def test_an_intermediate_that_expires_while_the_core_runs_is_reported_once(tmp_path,
                                                                                nursery,
                                                                                capfd):
    clock = FakeClock(1_800_000_000.0)
    home = make_home(tmp_path)
    now = dt.datetime.fromtimestamp(clock.now(), dt.timezone.utc)
    expires = now + dt.timedelta(days=2)
    chain_into_tls(home, now, expires)
    info = await reported_once_when_it_expires(home, clock, nursery, _dates_events)
    assert info.startswith(
        f"the chain certificate {INTERMEDIATE} served after the certificate in cert.pem "
        f"expired on {expires:%Y-%m-%d %H:%M} UTC: the console's HTTPS and the SMTP STARTTLS "
        f"still offer it, but browsers and mail servers that check certificates refuse it.")
    assert f"mailmoat core: {info}\n" in capfd.readouterr().err


def test_the_pages_name_an_expired_intermediate(tmp_path):
    home = make_home(tmp_path)
    now = dt.datetime.now(dt.timezone.utc)
    expired = now - dt.timedelta(days=1)
    chain_into_tls(home, now, expired)
    console = Console(create_app(home, clock=SYSTEM_CLOCK, config={"TESTING": True}), home)
    try:
        assert console.logon().status_code == 302
        status = html.unescape(console.get("/status/").get_data(as_text=True))
        page = html.unescape(console.get("/configuration/setup/certificates")
                             .get_data(as_text=True))
    finally:
        console.app.extensions["mailmoat"].close()
    assert (f" — its chain certificate {INTERMEDIATE} expired on {expired:%Y-%m-%d} (see "
            f"Certificate Management)") in status
    assert (f"The chain certificate {INTERMEDIATE} served after the certificate in cert.pem "
            f"expired on {expired:%Y-%m-%d %H:%M} UTC: the console's HTTPS and the SMTP "
            f"STARTTLS still offer it") in page
