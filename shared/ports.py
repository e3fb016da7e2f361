"""Whether a port can take a Mailmoat listener: SPEC §3, "a port already in use by another
program is refused with a warning and the old value kept".

Rules:
- A port counts as in use when a test socket cannot bind it on the wildcard address of
  each family the host has (what the listeners ask for by default); a port below 1024 that
  needs rights this process lacks is refused too.
- A port that one of Mailmoat's own listeners may hold now (the current values of
  PORT_KEYS) is not "in use" (SPEC §3): it is ours.
- But one save may not give a key the port another of our listeners holds now while it
  moves that listener too (a swap of http.port and https.port, say): each listener binds
  its new port before it closes its old one, so neither move could ever happen. The guide
  (§3 "Configuring SMTP options") refuses it as "in use" and says to change one port number
  at a time; so do we (SWAP_RULE).
- Only values the schema would accept are tried; the schema reports the rest.
- The console and `config set` / `config import` check with `check_ports`.
"""

from __future__ import annotations

import errno
import socket
from typing import Any, Mapping

from shared.settings import SettingError

__all__ = ["PORT_KEYS", "port_problem", "check_ports"]

PORT_KEYS = ("smtp.port", "http.port", "https.port")
SWAP_RULE = ("port {port} is in use: Mailmoat's {holder} listener holds it now, and this "
             "change moves {holder} too; change one port number at a time")
HELD_RULE = ("port {port} is in use by Mailmoat's {holder} listener, which is still on it "
             "(not where {holder} says); the old value is kept")


def port_problem(port: int) -> str | None:
    """Why `port` cannot be used by a Mailmoat listener, or None when it is free."""
    families = [(socket.AF_INET, "0.0.0.0")]
    if socket.has_ipv6:
        families.append((socket.AF_INET6, "::"))
    for family, address in families:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 on this machine
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                return f"port {port} needs administrator rights on this machine"
            if exc.errno == errno.EADDRNOTAVAIL:
                continue
            return f"port {port} is in use by another program; the old value is kept"
        finally:
            sock.close()
    return None


def check_ports(current: Mapping[str, Any], changes: Mapping[str, Any],
                ours: Mapping[str, int] | None = None) -> None:
    """Raises SettingError (`KEY: rule` for each) when a changed port is in use by another
    program, or by one of Mailmoat's own listeners that this change moves too (SWAP_RULE).
    `ours`: the ports Mailmoat's own listeners hold now, by key, where they may differ from
    the settings (the console's own listeners: `{"http.port": 8003}`)."""
    holders: dict[int, set[str]] = {}
    for key, port in [*((key, current[key]) for key in PORT_KEYS), *(ours or {}).items()]:
        holders.setdefault(port, set()).add(key)
    errors = []
    for key in PORT_KEYS:
        new = changes.get(key)
        if not (isinstance(new, int) and not isinstance(new, bool) and new != current[key]
                and 1 <= new <= 65535):
            continue          # unchanged, or the schema's to refuse
        others = sorted(holders.get(new, set()) - {key})
        # a listener bound where its setting does not say (`ours`) is not moved by a change
        held = [h for h in others if (ours or {}).get(h) == new and current[h] != new]
        moving = [h for h in others if h not in held and changes.get(h, current[h]) != new]
        if held:
            errors.append((key, HELD_RULE.format(port=new, holder=held[0])))
        elif moving:
            errors.append((key, SWAP_RULE.format(port=new, holder=moving[0])))
        elif new not in holders:
            problem = port_problem(new)
            if problem:
                errors.append((key, problem))
    if errors:
        raise SettingError(errors)
