"""Whether a port, or an address of smtp.listen, can take a Mailmoat listener: SPEC §3, "a
port already in use by another program is refused with a warning and the old value kept".

Rules:
- A port counts as in use when a test socket cannot bind it on the wildcard address of
  each family the host has (what the listeners ask for by default).
- A port below the host's first unprivileged port (`privileged_port_start`, 1024 unless
  net.ipv4.ip_unprivileged_port_start says otherwise) is a question about the listeners,
  not the caller: with a core running, its status snapshot says whether it may bind one
  (`may_bind_privileged_ports`: root, or CAP_NET_BIND_SERVICE as systemd's
  AmbientCapabilities gives); with none running, this process's own rights answer (the
  CLI run as root on the service user's home has become that user: shared.home.
  become_owner). The console's listeners are started by the same `mailmoat run`, or by a
  unit like the core's, so the core's answer stands for them too. Refused: PRIVILEGED_RULE.
- Where the listeners may bind a port the caller may not, the caller cannot test-bind it;
  the kernel's table of listening sockets (/proc/net/tcp, tcp6) says whether another
  program holds it. Without that table the port is taken on trust: a core that then cannot
  bind it keeps its old port and says so (a `service_start_failed` event).
- A port that one of Mailmoat's own listeners may hold now (the current values of
  shared.settings PORT_KEYS) is not "in use" (SPEC §3): it is ours.
- But one save may not give a key the port another of our listeners holds now while it
  moves that listener too (a swap of http.port and https.port, say): each listener binds
  its new port before it closes its old one, so neither move could ever happen. The guide
  (§3 "Configuring SMTP options") refuses it as "in use" and says to change one port number
  at a time; so do we (SWAP_RULE).
- An address of smtp.listen is refused the same way when this host does not have it: a test
  socket on it (port 0) fails with EADDRNOTAVAIL (NOT_LOCAL_RULE). The core would keep its
  old listener, and at its next start listen only on the addresses it can bind (core/smtp/
  listen_sockets.py), with nothing in the value saved to say why. A host that may bind any
  address (net.ipv4.ip_nonlocal_bind=1, a keepalived address not yet moved here) passes,
  as its listener would bind there too. The wildcards (0.0.0.0, ::) and the addresses the
  setting holds now are not tried: the listener serves what the host has of those.
- A broadcast address of one of the host's IPv4 networks (192.168.1.255 of a /24 on eth0,
  127.255.255.255 of the loopback's /8) passes that test bind, as the limited broadcast
  does, and takes no TCP connection: it is refused (BROADCAST_RULE). Which addresses those
  are, the kernel's local routing table says (`broadcast_networks`: its BROADCAST routes,
  read from /proc/net/fib_trie, which any process may read), the table bind(2) itself asks:
  an interface's `brd` attribute (SIOCGIFBRDADDR, `ip -j addr`) is not, since the kernel
  adds the broadcast route of every network shorter than /31 whether or not the address
  was given one (the loopback's 127.0.0.1/8 has none). Without the table the address is
  taken on trust, as a port is above.
  Unlike an address the host lacks, one the setting holds now is refused too: it stays a
  broadcast address, and a release before this rule stored some. The core leaves such an
  address out as it does one the host lacks (core/smtp/listen_sockets.py), so it is named
  on the Status page while the value is still stored.
- A DNS server of `dns.resolvers` at such a broadcast address is refused too
  (RESOLVER_BROADCAST_RULE): a query sent there gets no answer (Linux refuses the send), so
  every lookup of that server would time out.
- Only values the schema would accept are tried; the schema reports the rest.
- The console and `config set` / `config import` check with `check_ports`, giving it the
  data home's database so that it can ask the running core.
- Of the values stored, the host refuses as they stand only the broadcast addresses above
  (`stored_host_problems`, STORED_CHECKED_KEYS): a port in use or an address the host lacks
  now may be free or back by the time the listener binds, and is judged as a change only.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any, Mapping

from shared.clock import SYSTEM_CLOCK, WallClock
from shared.settings import PORT_KEYS, SCHEMA, SettingError
from shared.settings_types import RuleError, entries_rule
from shared.status import live_snapshot

__all__ = ["port_problem", "address_problem", "check_ports", "may_bind_privileged_ports",
           "privileged_port_start", "core_may_bind_privileged_ports", "broadcast_networks",
           "is_broadcast", "BROADCAST", "stored_host_problems", "HOST_CHECKS"]

# What this host refuses of a value when it is saved, for docs/settings.md (shared.
# settings_doc): the module rules above, in a sentence per key.
# (smtp.listen's own help says what the host refuses of its addresses.)
_PORT_CHECK = ("when saved, a port is refused while another program holds it, while one of "
               "Mailmoat's other listeners holds it (change one port at a time), and below the "
               "host's first unprivileged port (1024 unless net.ipv4.ip_unprivileged_port_start "
               "says otherwise) unless Mailmoat's listeners run as root or with "
               "CAP_NET_BIND_SERVICE")
HOST_CHECKS = {
    **{key: _PORT_CHECK for key in PORT_KEYS},
    "dns.resolvers": "a broadcast address of this host's networks is refused",
}

# How a refused change's rule ends (SWAP_RULE says what to do instead); a stored value's
# problem is said without it (stored_host_problems: nothing is being changed, upgrade20 C2).
CHANGE_REFUSED = "; the old value is kept"
SWAP_RULE = ("port {port} is in use: Mailmoat's {holder} listener holds it now, and this "
             "change moves {holder} too; change one port number at a time")
HELD_RULE = ("port {port} is in use by Mailmoat's {holder} listener, which is still on it "
             "(not where {holder} says)" + CHANGE_REFUSED)
IN_USE_RULE = "port {port} is in use by another program" + CHANGE_REFUSED
NOT_LOCAL_RULE = "{address} is not an address of this host ({reason})" + CHANGE_REFUSED
# what a broadcast address is said to be, in the refusal and on the console's pages
BROADCAST = "a broadcast address of this host's networks"
# What is wrong with a broadcast address, said alike of a change and of a stored value; a
# refused change adds CHANGE_REFUSED. A stored value is listed (Status page, `config export`)
# without it: nothing is being changed there (upgrade20 C2).
BROADCAST_RULE = "{address} is " + BROADCAST + ", which takes no connections"
RESOLVER_BROADCAST_RULE = "{address} is " + BROADCAST + ", which no DNS server answers from"
# The keys whose stored value this host may refuse as it stands (module rules)
STORED_CHECKED_KEYS = ("smtp.listen", "dns.resolvers")
_FIB_TRIE = "/proc/net/fib_trie"
_WILDCARDS = ("0.0.0.0", "::")
PRIVILEGED_RULE = ("port {port} needs root or CAP_NET_BIND_SERVICE, which {who} lacks "
                   "(docs/operations.md: Starting and stopping)" + CHANGE_REFUSED)
# who lacks it, in PRIVILEGED_RULE
_RUNNING_CORE = "the running core"
_THIS_USER = "this user (no core is running to ask)"
NET_BIND_SERVICE_BIT = 10          # linux/capability.h: CAP_NET_BIND_SERVICE
_TCP_LISTEN = "0A"                 # the `st` column of /proc/net/tcp for LISTEN


def privileged_port_start() -> int:
    """The lowest port a process without CAP_NET_BIND_SERVICE may bind: Linux's
    net.ipv4.ip_unprivileged_port_start (IPv6 too), 1024 where there is no such setting."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


def may_bind_privileged_ports() -> bool:
    """Whether this process may bind ports below `privileged_port_start()`: the capability
    CAP_NET_BIND_SERVICE in its effective set (/proc/self/status `CapEff`), which root has
    unless a container took it away and which systemd's AmbientCapabilities gives a service
    user; where there is no /proc, whether it runs as root."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> NET_BIND_SERVICE_BIT & 1)
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


def core_may_bind_privileged_ports(conn: sqlite3.Connection,
                                   clock: WallClock = SYSTEM_CLOCK) -> bool | None:
    """What the running core's status snapshot says of its rights (`may_bind_privileged_
    ports`); None when there is no live snapshot (none, or one older than the Status page
    allows: no core runs, or it has not written for a while) or it is of a release that
    did not say."""
    snapshot = live_snapshot(conn, clock.now())
    if snapshot is None:
        return None
    value = snapshot.get("may_bind_privileged_ports")
    return value if isinstance(value, bool) else None


def _listening(port: int) -> bool | None:
    """Whether a TCP socket of this host listens on `port`, from the kernel's tables, which
    any process may read; None where there are none to read."""
    readable = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as lines:
                rows = [line.split() for line in lines][1:]      # after the column names
        except OSError:
            continue
        readable = True
        # `sl local_address rem_address st …`; local_address is ADDRESS:PORT in hex
        if any(row[3] == _TCP_LISTEN and int(row[1].rsplit(":", 1)[1], 16) == port
               for row in rows):
            return True
    return False if readable else None


def port_problem(port: int, listeners_may_bind_privileged: bool | None = None) -> str | None:
    """Why `port` cannot be used by a Mailmoat listener, or None when it is free.
    `listeners_may_bind_privileged`: what the running core says of its rights
    (`core_may_bind_privileged_ports`); None: no core is running, this process answers."""
    if port < privileged_port_start():
        if listeners_may_bind_privileged is None:
            allowed, who = may_bind_privileged_ports(), _THIS_USER
        else:
            allowed, who = listeners_may_bind_privileged, _RUNNING_CORE
        if not allowed:
            return PRIVILEGED_RULE.format(port=port, who=who)
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
                # the listeners may bind it and this process may not (rule 3)
                return IN_USE_RULE.format(port=port) if _listening(port) else None
            if exc.errno == errno.EADDRNOTAVAIL:
                continue
            return IN_USE_RULE.format(port=port)
        finally:
            sock.close()
    return None


def broadcast_networks(fib_trie: str = _FIB_TRIE) -> list[ipaddress.IPv4Network] | None:
    """The networks of the BROADCAST routes of the kernel's local routing table (module
    rules): a /32 for each broadcast address of the host's networks. None where the table
    cannot be read (no /proc: not Linux)."""
    try:
        with open(fib_trie, encoding="ascii") as lines:
            text = lines.read()
    except OSError:
        return None
    # Sections "Main:", "Local:" (and "Id N:" with policy routing) list the leaves of each
    # table: "|-- ADDRESS" and under it one "/LENGTH SCOPE TYPE [tos=N]" line per route.
    networks, in_local, leaf = [], False, None
    for line in text.splitlines():
        if not line.startswith(" "):
            in_local, leaf = line.startswith("Local:"), None
            continue
        words = line.split()
        if not in_local or not words:
            continue
        if words[0] == "|--" and len(words) == 2:
            leaf = words[1]
        elif words[0].startswith("/") and len(words) >= 3 and words[2] == "BROADCAST" \
                and leaf is not None:
            try:
                networks.append(ipaddress.IPv4Network(f"{leaf}{words[0]}", strict=False))
            except ValueError:
                continue
    return networks


def address_problem(address: str) -> str | None:
    """Why the SMTP listener could not listen on `address` (an IP address the schema took),
    or None (module rules): NOT_LOCAL_RULE when this host does not have it, BROADCAST_RULE
    when it is a broadcast address of the host's networks."""
    if address in _WILDCARDS:
        return None
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:          # an IPv6 address on a host without IPv6
        return NOT_LOCAL_RULE.format(address=address, reason=exc.strerror)
    try:
        sock.bind((address, 0))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            return NOT_LOCAL_RULE.format(address=address, reason=exc.strerror)
    finally:
        sock.close()
    return _broadcast_problem(address, CHANGE_REFUSED)


def is_broadcast(address: str, networks: list[ipaddress.IPv4Network] | None = None) -> bool:
    """Whether `address` (an IP address) is a broadcast address of the host's networks
    (module rules), among `networks` (`broadcast_networks()` when not given). False where
    the table cannot be read."""
    if ":" in address or address in _WILDCARDS:
        return False
    if networks is None:
        networks = broadcast_networks() or []
    ip = ipaddress.IPv4Address(address)
    return any(ip in network for network in networks)


def _broadcast_problem(address: str, ending: str) -> str | None:
    """BROADCAST_RULE, then `ending`, when `address` is a broadcast address; else None."""
    return BROADCAST_RULE.format(address=address) + ending if is_broadcast(address) else None


def _listen_problems(current: list[str], new: Any,
                     ending: str = CHANGE_REFUSED) -> RuleError | None:
    """The entries of a new smtp.listen this host does not have (`address_problem`), as the
    schema reports a list's bad entries; None when there are none or the schema refuses
    the value. An address `current` holds is kept however the host lacks it now (the
    listener serves it once it comes back), but not a broadcast address: that never takes a
    connection, and a release before the rule stored some (the core leaves it out too:
    core/smtp/listen_sockets.py). `ending` ends the rule of each such held address: ""
    where the stored value is listed, not changed."""
    kind = SCHEMA["smtp.listen"].kind
    try:
        wanted = kind.check(new)
    except RuleError:
        return None               # the schema's to refuse
    try:        # held in the form the schema gives it: an older release stored ::ffff:a.b.c.d
        current = kind.check(current)
    except RuleError:
        pass
    bad = [(index, RuleError(problem)) for index, address in enumerate(wanted, 1)
           if (problem := address_problem(address) if address not in current
               else _broadcast_problem(address, ending))]
    if not bad:
        return None
    return RuleError(entries_rule([(index, exc.rule) for index, exc in bad]),
                     entries=tuple(bad))


def _resolver_problems(new: Any, ending: str = CHANGE_REFUSED) -> RuleError | None:
    """The entries of a new dns.resolvers at a broadcast address of the host's networks (module
    rules), as the schema reports a list's bad entries, each rule followed by `ending`
    ("" where the stored value is listed); None when there are none or the schema refuses
    the value."""
    try:
        wanted = SCHEMA["dns.resolvers"].kind.check(new)
    except RuleError:
        return None               # the schema's to refuse
    servers = [SCHEMA["dns.resolvers"].kind.item.same_form(entry)[0] for entry in wanted]
    networks = broadcast_networks() if any(":" not in server for server in servers) else []
    bad = [(index, RuleError(RESOLVER_BROADCAST_RULE.format(address=server) + ending))
           for index, server in enumerate(servers, 1) if is_broadcast(server, networks or [])]
    if not bad:
        return None
    return RuleError(entries_rule([(index, exc.rule) for index, exc in bad]),
                     entries=tuple(bad))


def check_ports(current: Mapping[str, Any], changes: Mapping[str, Any],
                ours: Mapping[str, int] | None = None,
                conn: sqlite3.Connection | None = None,
                clock: WallClock = SYSTEM_CLOCK) -> None:
    """Raises SettingError (`KEY: rule` for each) when a changed port is in use by another
    program, or by one of Mailmoat's own listeners that this change moves too (SWAP_RULE),
    or is a privileged port the listeners may not bind (PRIVILEGED_RULE), or a changed
    smtp.listen holds an address this host does not have (NOT_LOCAL_RULE; the SettingError's
    cause numbers its entries, as the schema's does).
    `ours`: the ports Mailmoat's own listeners hold now, by key, where they may differ from
    the settings (the console's own listeners: `{"http.port": 8003}`). `conn`: the data
    home's database, where a running core says what it may bind; without one, or with no
    core running, this process's rights answer."""
    privileged = core_may_bind_privileged_ports(conn, clock) if conn is not None else None
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
            problem = port_problem(new, privileged)
            if problem:
                errors.append((key, problem))
    causes = {}
    if "smtp.listen" in changes:
        listen = _listen_problems(current["smtp.listen"], changes["smtp.listen"])
        if listen is not None:
            errors.append(("smtp.listen", listen.rule))
            causes["smtp.listen"] = listen
    if "dns.resolvers" in changes:
        resolvers = _resolver_problems(changes["dns.resolvers"])
        if resolvers is not None:
            errors.append(("dns.resolvers", resolvers.rule))
            causes["dns.resolvers"] = resolvers
    if errors:
        raise SettingError(errors, causes)


def stored_host_problems(stored: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`(key, rule)` for each value of `stored` (a full settings dict, as `load` reads it)
    that this host refuses as it stands: a broadcast address of its networks in smtp.listen
    or dns.resolvers (module rules), with the rule a change keeping it is refused with, less
    that change's CHANGE_REFUSED ending: a listing of what is stored changes nothing. A
    value the schema refuses is left to the schema. Never raises for a stored value."""
    found = {"smtp.listen": _listen_problems(stored["smtp.listen"], stored["smtp.listen"],
                                             ending=""),
             "dns.resolvers": _resolver_problems(stored["dns.resolvers"], ending="")}
    return [(key, found[key].rule) for key in STORED_CHECKED_KEYS if found[key] is not None]
