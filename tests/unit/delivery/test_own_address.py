"""Which addresses are this machine's own (core/delivery/deliver.py rule 8, `_is_this_machine`),
as the loop check asks before calling a next hop on our SMTP port.

Regression (review, session 15, A2): the check bound a socket to the address, and with
net.ipv4.ip_nonlocal_bind on (keepalived, HAProxy hosts) any address binds, so every MX
host looked like this gateway and all outbound mail failed 5.4.6.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from core.delivery.deliver import _is_this_machine

NONLOCAL_BIND = Path("/proc/sys/net/ipv4/ip_nonlocal_bind")
NOT_OURS = ipaddress.ip_address("203.0.113.7")          # RFC 5737 TEST-NET-3


def test_loopback_is_ours_and_a_documentation_address_is_not():
    assert _is_this_machine(ipaddress.ip_address("127.0.0.1"))
    assert _is_this_machine(ipaddress.ip_address("::1"))
    assert not _is_this_machine(NOT_OURS)


@pytest.fixture
def nonlocal_bind():
    """net.ipv4.ip_nonlocal_bind on for the test (this network namespace), as it was after."""
    if not NONLOCAL_BIND.exists() or not os.access(NONLOCAL_BIND, os.W_OK):
        pytest.skip("needs a writable /proc/sys/net/ipv4/ip_nonlocal_bind (root, Linux)")
    before = NONLOCAL_BIND.read_text()
    try:
        NONLOCAL_BIND.write_text("1")
    except OSError as exc:
        pytest.skip(f"cannot turn on ip_nonlocal_bind here: {exc}")
    try:
        yield
    finally:
        NONLOCAL_BIND.write_text(before)


def test_an_address_that_binds_only_by_nonlocal_bind_is_not_ours(nonlocal_bind):
    assert not _is_this_machine(NOT_OURS)
