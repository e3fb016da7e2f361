"""IPv6 addresses in the texts Mailmoat writes (ipv6 findings 6, 7 and 8), over real SMTP on ::1.

- The Received field names an IPv6 client as the RFC 5321 §4.4 address literal [IPv6:::1].
- The start line and the service_started event bracket an IPv6 listening address
  ([::1]:2525), as the listener's own messages do.
- Delivery events name an IPv6 next hop `relay:[::1]:port`.
- A refused IPv6 connection reads "connect to ::1[::1]:port: Connection refused" in the delay
  notice and the events: no Python tuple repr, and no "(from ::1)" or Remote-MTA, since no
  MTA answered (RFC 3464 §2.3.5).
- A console lock-out of an IPv6 client, counted by its /64, says so: the page names "your
  network (…/64)" and the event's data carries the /64.
"""

from __future__ import annotations

import re
import smtplib
import socket
import socketserver
import threading
import time
from email.message import EmailMessage

import pytest
import trio

from core.app import run_core
from shared.events import Action
from tests.support import sink as sink_module
from tests.support.core import ADMIN_PASSWORD, CoreProcess, make_home, routed_home
from tests.support.sink import Sink
from tests.support.waiting import events_of, until



class _Server6(sink_module._Server):
    address_family = socket.AF_INET6

    def __init__(self, sink: Sink):
        self.sink = sink
        socketserver.ThreadingTCPServer.__init__(self, ("::1", 0), sink_module._Handler)


class Sink6(Sink):
    """The loopback sink, on [::1]."""

    host = "::1"

    def start(self) -> "Sink6":
        self._server = _Server6(self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self


@pytest.fixture
def sink6():
    with Sink6() as server:
        yield server


def dead_port_on_ipv6_loopback() -> int:
    """A port on ::1 that nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        return sock.getsockname()[1]


def send_over_ipv6(port: int, recipients: list[str], subject: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@local.test", ", ".join(recipients), subject
    msg.set_content("Hello over IPv6.\n")
    with smtplib.SMTP("::1", port, timeout=30) as client:
        client.send_message(msg, from_addr="alice@local.test", to_addrs=recipients)


async def test_an_ipv6_client_is_an_address_literal_in_the_received_field(
        tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, smtp__listen=["127.0.0.1", "::1"])
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(send_over_ipv6, port, ["bob@local.test"], "received")
    [message] = await trio.to_thread.run_sync(sink.wait_for, 1)
    received = message.data.split(b"\r\n\tby ", 1)[0].decode()
    assert received.endswith("([IPv6:::1])"), received
    # the start is announced with the address in brackets, as the listener writes it
    assert core.listening == f"127.0.0.1:{port}, [::1]:{port}"
    await core.events.aflush()
    [started] = events_of(home, Action.SERVICE_STARTED)
    assert started["info"].endswith(f"SMTP on 127.0.0.1:{port}, [::1]:{port}")
    core.cancel_scope.cancel()


def test_the_start_line_brackets_an_ipv6_address(tmp_path):
    home = make_home(tmp_path, smtp__listen=["127.0.0.1", "::1"])
    log = home.root / "core-test.log"
    with CoreProcess(home) as core:
        port = core.smtp_port
        deadline = time.monotonic() + 20
        while b"Mailmoat core: SMTP on" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
    [line] = [t for t in log.read_text().splitlines() if t.startswith("Mailmoat core:")]
    assert line == f"Mailmoat core: SMTP on 127.0.0.1:{port}, [::1]:{port}"


async def test_delivery_to_an_ipv6_relay_names_the_next_hop_in_brackets(
        tmp_path, sink, sink6, nursery):
    home = make_home(tmp_path, smtp__listen=["::1"], routing__local=[
        {"match": "v6.test", "relay": "0:0:0:0:0:0:0:1", "port": sink6.port}])
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(send_over_ipv6, core.smtp_addresses[0][1],
                                  ["carol@v6.test"], "next hop")
    await trio.to_thread.run_sync(sink6.wait_for, 1)
    await until(lambda: events_of(home, Action.DELIVERED), flush=core.events.aflush)
    [delivered] = events_of(home, Action.DELIVERED)
    [connected] = events_of(home, Action.CONNECTED_TO)
    hop = f"relay:[::1]:{sink6.port}"
    assert f'"next_hop": "{hop}"' in delivered["data"]
    assert f'"next_hop": "{hop}"' in connected["data"]
    assert connected["info"] == f"actual connection to ::1[::1]:{sink6.port}, no TLS"
    core.cancel_scope.cancel()


async def test_a_refused_ipv6_connection_reads_plainly_and_names_no_remote_mta(
        tmp_path, sink, nursery):
    dead = dead_port_on_ipv6_loopback()
    home = make_home(tmp_path, smtp__listen=["::1"], routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port},
        {"match": "dead.test", "relay": "::1", "port": dead}])
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(send_over_ipv6, core.smtp_addresses[0][1],
                                  ["x@dead.test"], "dead")
    [notice] = await trio.to_thread.run_sync(sink.wait_for, 1)      # the delay notice
    expected = f"connect to ::1[::1]:{dead}: Connection refused"
    parsed = notice.message
    text, status, _headers = parsed.get_payload()
    human = text.get_content()
    assert f"<x@dead.test>: {expected}" in human.splitlines()
    assert "Error connecting" not in human and "(from" not in human
    [_, block] = status.get_payload()
    assert block["Diagnostic-Code"] == f"x-mailmoat; {expected}"
    assert block["Remote-MTA"] is None
    await until(lambda: events_of(home, Action.DEFERRED), flush=core.events.aflush)
    [deferred] = events_of(home, Action.DEFERRED)
    assert deferred["info"] == expected
    assert '"remote_mta": null' in deferred["data"]
    assert f'"next_hop": "relay:[::1]:{dead}"' in deferred["data"]
    core.cancel_scope.cancel()


# --- console lock-out counted by the /64 (finding 8) -----------------------------------------

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def _logon_attempt(client, ip: str, password: str = "wrong"):
    environ = {"REMOTE_ADDR": ip}
    page = client.get("/logon", environ_base=environ).get_data(as_text=True)
    token = _CSRF.search(page).group(1)
    return client.post("/logon", data={"username": "admin", "password": password,
                                       "csrf_token": token},
                       headers={"Referer": "http://localhost/"}, environ_base=environ)


def test_a_locked_out_ipv6_client_is_told_its_network_is_refused(tmp_path):
    from console.app import create_app
    from console.throttle import FAILED_LOGONS_PER_CLIENT
    from shared.clock import FakeClock
    home = make_home(tmp_path)
    app = create_app(home, clock=FakeClock(), config={"TESTING": True})
    try:
        client = app.test_client()
        for number in range(FAILED_LOGONS_PER_CLIENT):   # two addresses of one /64
            response = _logon_attempt(client, f"fd00::{2 + number % 2}")
        assert response.status_code == 429
        page = response.get_data(as_text=True)
        assert "Too many failed logons from your network (fd00::/64)" in page
        assert "Computers outside it can still log on." in page
        assert "Other computers" not in page
        # another /64 still logs on; an IPv4 client's page names its address as before
        assert _logon_attempt(app.test_client(), "fd00:0:0:1::2",
                              ADMIN_PASSWORD).status_code == 302
        for _ in range(FAILED_LOGONS_PER_CLIENT):
            response = _logon_attempt(client, "192.0.2.50")
        assert response.status_code == 429
        assert "from your computer&#39;s address" in response.get_data(as_text=True)
        app.extensions["mailmoat"].events.flush()
        network, address = [e for e in events_of(home, Action.FAILED_LOGON)
                            if e["result"] == "locked_out"]
        assert '"client_key": "fd00::/64"' in network["data"]
        assert "from the network fd00::/64" in network["info"]
        assert '"client_key": "192.0.2.50"' in address["data"]
        assert "from this client" in address["info"]
    finally:
        app.extensions["mailmoat"].close()
