"""The SMTP listener's sockets: bound where smtp.listen/smtp.port say, rebound when they
change, and the accept loop that hands each connection to a session.

Rules:
- One listening socket per address of smtp.listen. An IPv6 socket is IPv6-only, so IPv4
  clients arrive on the IPv4 socket, unmapped; "::" on a host without IPv6 is left out
  (IPv4 is served).
- An address this host lacks (EADDRNOTAVAIL: an interface that went away, an IPv6 address
  not yet through duplicate address detection) is left out, while another address of the
  list can be bound: the listener serves those, and the caller reports what is missing
  (`Bound.missing`) and tries it again (`bind_missing`, each address on its own: one that
  came back with its port taken by another program meanwhile stays missing, with that
  reason, and keeps no other from being bound). Mailmoat's users cannot save such
  an address (shared/ports.py), so it is one the host had when it was set; a core that
  crashed on it took no mail on the addresses it does have, and `mailmoat run` restarted
  it for ever. Any other failure (the port in use, a privileged port), or no address at
  all that can be bound, raises ListenFailed naming the address and the reason.
- A broadcast address of the host's networks (shared.ports.is_broadcast) is left out the
  same way, with that reason (shared.ports.BROADCAST), before any bind: Linux lets a TCP
  socket listen there and no client can ever connect, so a listener bound only there took
  no mail and said nothing. Users cannot save one (shared/ports.py), but a release before
  that rule stored some; it is tried again like a missing address, in case the host's
  networks change.
- A rebind binds the new sockets beside the old ones, so a refusal costs nothing: the old
  ones stay open and the caller hears why (`rebind`'s on_failed). Only on the same port,
  where our own old sockets may be what is in the way (0.0.0.0 after 127.0.0.1), do the
  old ones close first, and open again if the new ones still cannot bind.
- SO_REUSEPORT lets any process of the same user join the port's group, so a second
  Mailmoat core (another data home with the same smtp.port, a leftover test instance) bound
  beside the first and took half the mail unseen (review24a O1). At its start, before any
  of its listeners binds, the core probes each address with a socket without SO_REUSEPORT
  (`refuse_if_listened_on`): a socket listening there, or on a wildcard covering it, makes
  that fail, and the start fails as for a plain socket in the way. Not covered: a rebind to
  another port at run time (the listener processes rebind one by one, each beside its
  siblings, so a probe there cannot tell theirs from another program's), and two cores
  whose probes both come before either binds.
- accept(2) errors about one connection (the client already gone) never end the listener;
  running out of descriptors makes it back off and go on listening.
- A listener that stops accepting while others share its port (SO_REUSEPORT: a change of
  the listener processes, core/smtp/listeners.py) takes in what its accept queue holds and
  closes in the same step (`accept_queued_and_close`): closing a socket of the group resets
  the connections still queued on it, so only those arriving in that instant are lost,
  those in their handshake (with the kernel's default net.ipv4.tcp_migrate_req 0; set to 1,
  the kernel hands even those to another socket of the group).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import trio

from core.delivery.routing import host_port
from core.smtp.streams import TcpStream
from shared.ports import BROADCAST, broadcast_networks, is_broadcast

__all__ = ["ListenFailed", "failed_at", "NO_SUCH_ADDRESS", "Bound", "open_listen_sockets",
           "refuse_if_listened_on", "close_listen_sockets", "rebind", "bind_missing", "accept_connections",
           "accept_queued_and_close"]

# accept(2) errors about one connection, not the listener (trio.SocketListener's list)
_ACCEPT_ERRORS_TO_IGNORE = {getattr(errno, name) for name in (
    "EPERM", "ECONNABORTED", "EPROTO", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN", "ENONET",
    "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH", "ENOSR", "ESOCKTNOSUPPORT", "EPROTONOSUPPORT",
    "ETIMEDOUT", "ECONNRESET") if hasattr(errno, name)}
# bind(2) errors that are about the port, not the address: the rule to name is smtp.port
_PORT_ERRORS = {errno.EADDRINUSE, errno.EACCES, errno.EPERM}
# what an address this host lacks is said to be, in events and on the console's pages
NO_SUCH_ADDRESS = "this host has no such address now"


class ListenFailed(Exception):
    """The listener cannot bind where the settings say: the message names the address and
    the reason (an operator's failure, not a bug: `mailmoat core` prints it as one line).
    `host`: the address, where one is to blame; `rule`: the setting to correct, for the
    event's rule column; `address` (host:port) and `reason` (the error's words), where one
    address is to blame (`failed_at`)."""

    def __init__(self, message: str, errno_: int | None = None, host: str | None = None):
        super().__init__(message)
        self.errno = errno_
        self.host = host
        self.rule = "smtp.port" if errno_ in _PORT_ERRORS else "smtp.listen"
        self.address = host or ""
        self.reason = ""

    @property
    def is_missing(self) -> bool:
        """Whether this host lacks the address (module rules)."""
        return self.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)

    @property
    def problem(self) -> str:
        """Why the address is not listened on, as the Status page and the Setup tab say it
        (shared.status `not_listening_notices`)."""
        if self.is_missing:
            return f"{NO_SUCH_ADDRESS} ({self.reason})" if self.reason else NO_SUCH_ADDRESS
        return self.reason or str(self)


def failed_at(host: str, port: int, errno_: int | None, reason: str) -> ListenFailed:
    """The ListenFailed of one address that could not be bound, for `reason` (strerror)."""
    failed = ListenFailed(f"cannot listen for SMTP on {host_port(host, port)} ({reason})",
                          errno_, host)
    failed.address, failed.reason = host_port(host, port), reason
    return failed


@dataclass
class Bound:
    """The listening sockets, and the addresses of smtp.listen left out because this host
    lacks them now (module rules), each with why."""
    sockets: list[socket.socket]
    missing: list[ListenFailed] = field(default_factory=list)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [sock.getsockname()[:2] for sock in self.sockets]


def close_listen_sockets(listeners: list[socket.socket]) -> None:
    for listener in listeners:
        if listener.fileno() != -1:
            trio.lowlevel.notify_closing(listener)
            listener.close()


def _is_missing(exc: OSError) -> bool:
    """Whether socket()/bind() failed because this host lacks the address (module rules):
    EADDRNOTAVAIL, or no such address family (an IPv6 address on a host without IPv6)."""
    return exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)


def _tcp_socket(host: str, *, reuse_port: bool) -> socket.socket:
    """An unbound TCP socket for `host` as the listeners and the start's probe bind one:
    SO_REUSEADDR (a connection in TIME_WAIT does not hold the port), SO_REUSEPORT when
    `reuse_port`, an IPv6 one IPv6-only (module rules)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                         socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    except OSError:
        sock.close()
        raise
    return sock


def open_listen_sockets(hosts, port: int, *, reuse_port: bool) -> Bound:
    """One listening socket per address of `hosts` (IP addresses, the setting's rule), with
    SO_REUSEPORT when `reuse_port` (listener processes sharing the port), and the addresses
    this host lacks (module rules). Raises ListenFailed naming the address and the reason
    when one cannot be bound otherwise, or none can."""
    listeners, missing = [], []
    networks = broadcast_networks() or []
    for host in hosts:
        if is_broadcast(host, networks):
            missing.append(failed_at(host, port, None, BROADCAST))
            continue
        try:
            sock = _tcp_socket(host, reuse_port=reuse_port)
        except OSError as exc:
            if host == "::":
                continue  # IPv6 switched off on this host: serve IPv4 only
            if not _is_missing(exc):
                close_listen_sockets(listeners)
                raise
            missing.append(failed_at(host, port, errno.EADDRNOTAVAIL, exc.strerror))
            continue
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRNOTAVAIL and host == "::":
                continue  # a host without IPv6: serve IPv4 only
            failed = failed_at(host, port, exc.errno, exc.strerror)
            if not _is_missing(exc):
                close_listen_sockets(listeners)
                raise failed from None
            missing.append(failed)
            continue
        sock.setblocking(False)
        sock.listen(256)
        listeners.append(sock)
    if not listeners:
        if len(missing) == 1:
            raise missing[0]
        raise ListenFailed(f"cannot listen for SMTP on any of {', '.join(hosts)} ("
                           + "; ".join(f"{was.host}: {was.problem}" for was in missing) + ")",
                           errno.EADDRNOTAVAIL)
    return Bound(listeners, missing)


def refuse_if_listened_on(hosts, port: int) -> None:
    """Raises the ListenFailed a bind would when a socket of another program listens on an
    address of `hosts` at `port`, SO_REUSEPORT or not (module rules: at the core's start,
    before its own listeners bind). Any other failure is left to the bind to say."""
    if port == 0:
        return      # a port the kernel picks: no one else's
    networks = broadcast_networks() or []
    for host in hosts:
        if is_broadcast(host, networks):
            continue
        try:
            with _tcp_socket(host, reuse_port=False) as probe:
                probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise failed_at(host, port, exc.errno, exc.strerror) from None


def bind_missing(bound: Bound, port: int, *, reuse_port: bool) -> Bound:
    """`bound` with the sockets of those of its missing addresses that can be bound now
    (the address came back), each tried on its own: one that still cannot be bound stays
    missing, with why now (no such address still, or its port taken by another program
    since it went away), and keeps none of the others from being bound."""
    sockets, missing = list(bound.sockets), []
    for was in bound.missing:
        try:
            sockets += open_listen_sockets([was.host], port, reuse_port=reuse_port).sockets
        except ListenFailed as exc:
            missing.append(exc)
        except OSError as exc:      # socket() itself: out of descriptors, say
            missing.append(failed_at(was.host, port, exc.errno, exc.strerror))
    return Bound(sockets, missing)


def rebind(bound: Bound, hosts, port: int, *, reuse_port: bool,
           on_failed: Callable[[ListenFailed], None]) -> Bound:
    """The listening sockets for (`hosts`, `port`), or `bound` (still open) when those
    cannot be bound, after `on_failed(why)` (module rules). Raises ListenFailed only when
    the old sockets, closed to make way on their port, cannot be bound again either."""
    listeners = bound.sockets
    addresses = bound.addresses
    try:
        new = open_listen_sockets(hosts, port, reuse_port=reuse_port)
    except ListenFailed as exc:
        if exc.errno != errno.EADDRINUSE or port != addresses[0][1]:
            on_failed(exc)
            return bound
        old_hosts = [address[0] for address in addresses]
        close_listen_sockets(listeners)
        try:
            new = open_listen_sockets(hosts, port, reuse_port=reuse_port)
        except ListenFailed as exc:
            on_failed(exc)
            return Bound(open_listen_sockets(old_hosts, port, reuse_port=reuse_port).sockets,
                         bound.missing)
    close_listen_sockets(listeners)
    return new


_QUEUE_EMPTY = object()     # _accept_one: nothing waits to be accepted
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def _accept_one(listener: socket.socket):
    """A connection waiting on `listener`, None for one gone already (module rules), or
    _QUEUE_EMPTY; raises OSError of _OUT_OF_DESCRIPTORS and errors about the listener."""
    try:
        return listener.accept()[0]
    except BlockingIOError:
        return _QUEUE_EMPTY
    except OSError as exc:
        if exc.errno in _ACCEPT_ERRORS_TO_IGNORE:
            return None  # that client is gone; the listener is fine
        raise


async def accept_connections(listener: socket.socket, sessions: trio.Nursery,
                             serve: Callable[[TcpStream], Awaitable[None]]) -> None:
    """Accept connections on `listener` until cancelled, each served by `serve(stream)` in
    the `sessions` nursery."""
    while True:
        try:
            connection = _accept_one(listener)
        except OSError as exc:
            if exc.errno in _OUT_OF_DESCRIPTORS:
                await trio.sleep(0.1)  # out of descriptors: back off, keep listening
                continue
            raise
        if connection is _QUEUE_EMPTY:
            await trio.lowlevel.wait_readable(listener)
            continue
        if connection is not None:
            sessions.start_soon(serve, TcpStream(connection))
        await trio.lowlevel.checkpoint()


def accept_queued_and_close(listeners: list[socket.socket], sessions: trio.Nursery,
                            serve: Callable[[TcpStream], Awaitable[None]]) -> None:
    """Stop listening on `listeners` without losing a connection their accept queues hold
    (module rules): each is served by `serve(stream)` in `sessions` like any other. Runs
    in one step, without a checkpoint, so nothing comes between the last accept and the
    close."""
    for listener in listeners:
        while listener.fileno() != -1:
            try:
                connection = _accept_one(listener)
            except OSError:
                break           # out of descriptors: what is left cannot be taken in
            if connection is _QUEUE_EMPTY:
                break
            if connection is not None:
                sessions.start_soon(serve, TcpStream(connection))
    close_listen_sockets(listeners)
