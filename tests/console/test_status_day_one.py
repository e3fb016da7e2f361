"""What the Status page tells a new administrator (tester dayone17):
- finding 1: while relay.mode is allow the gateway is an open relay, and no page said so;
- finding 2: "Server and port" showed a third name (getfqdn's `localhost`) where the banner
  said `vm`, and nothing said that a null smtp.hostname gave a name receivers may refuse;
- finding 3: the heuristic engine is off by default (SPEC), and the page showed "Virus
  scanning Enabled" and nothing about antispam.

The snapshots are written with the core's own writer (shared.status), as a core on a machine
named `vm` would write them."""

from __future__ import annotations

import html
import re

from shared import db
from shared.home import gateway_name, hostname_notice
from shared.settings import OPEN_RELAY_WARNING
from shared.status import new_snapshot, write_snapshot


def _snapshot(home, clock, hostname: str) -> None:
    conn = db.connect(home.db)
    try:
        write_snapshot(conn, new_snapshot(version="0.1.0", hostname=hostname, smtp_port=2525,
                                          started_at=clock.now() - 60), now=clock.now())
    finally:
        conn.close()


def _page(admin) -> str:
    return html.unescape(admin.get("/status/").get_data(as_text=True))


def _warnings(page: str) -> list[str]:
    return [re.sub(r"\s+", " ", text).strip() for text in
            re.findall(r'<p class="flash warning[^"]*"[^>]*>(.*?)</p>', page, re.S)]


def _row(page: str, label: str) -> str:
    found = re.search(rf'<th scope="row">{re.escape(label)}</th><td class="num">([^<]*)</td>',
                      page)
    assert found, label
    return found.group(1)


def test_open_relay_is_a_warning_while_relay_mode_is_allow(admin, home, clock):
    _snapshot(home, clock, "gw.example.com")
    assert OPEN_RELAY_WARNING not in _warnings(_page(admin))
    admin.set(relay__mode="allow")
    assert OPEN_RELAY_WARNING in _warnings(_page(admin))
    admin.set(relay__mode="deny_except")
    assert OPEN_RELAY_WARNING not in _warnings(_page(admin))


def test_a_single_label_machine_name_is_a_warning_while_smtp_hostname_is_empty(
        admin, home, clock):
    _snapshot(home, clock, "vm")
    page = _page(admin)
    notice = hostname_notice({"smtp.hostname": None}, "vm")
    assert notice and "receivers may refuse EHLO vm" in notice
    assert notice in _warnings(page)
    assert _row(page, "Server and port") == "vm:2525"
    admin.set(smtp__hostname="mx.example.com")
    assert notice not in _warnings(_page(admin))


def test_a_fully_qualified_machine_name_is_no_warning(admin, home, clock):
    _snapshot(home, clock, "gw.example.com")
    assert not [w for w in _warnings(_page(admin)) if "smtp.hostname" in w]


def test_server_and_port_before_the_core_reported_is_the_name_smtp_uses(admin):
    # with smtp.hostname empty, the machine's name as the banner has it; it was "—"
    assert admin.settings()["smtp.hostname"] is None
    page = _page(admin)
    assert _row(page, "Server and port") == \
        f"{gateway_name(admin.settings())}:{admin.settings()['smtp.port']}"


def test_heuristic_antispam_row_says_whether_the_engine_is_on(admin, home, clock):
    _snapshot(home, clock, "gw.example.com")
    assert _row(_page(admin), "Heuristic antispam") == "Disabled"       # SPEC's default
    admin.set(heuristic__enabled=True)
    assert _row(_page(admin), "Heuristic antispam") == "Enabled"
