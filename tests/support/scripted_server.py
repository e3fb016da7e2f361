"""Hand-scripted SMTP servers for delivery tests: what the real sink (sink.py) will not do —
never answer, break TLS, announce a SIZE limit. Each test writes its script as a `handle`
coroutine; these serve it on loopback and read its command lines.

A hop's port is picked by `held_port`, free and held at every address of HOP_ADDRESSES
while the hop serves, so that a test may put a second hop at the same port on another of
them, or find nothing listening there, without another xdist worker's socket in the way."""

from __future__ import annotations

import errno
import socket
from contextlib import contextmanager

import trio

__all__ = ["HOP_ADDRESSES", "held_port", "serve_on_loopback", "command_lines",
           "size_limited_server"]

# where delivery tests put their hops, or leave nothing listening for a refused connection
HOP_ADDRESSES = ("127.0.0.1", "127.0.0.3", "127.0.0.4")
PICK_ATTEMPTS = 100


@contextmanager
def held_port(addresses=HOP_ADDRESSES):
    """A port free at every one of `addresses`, held there while the block runs by a
    socket bound at each, with SO_REUSEADDR and not listening. A hop listens beside the
    hold (trio's listeners set SO_REUSEADDR too); a connection where none does is refused;
    no other socket gets the port at these addresses meanwhile (port 0 never picks it, a
    plain bind is refused). Regression (flakefix22): a hop at 127.0.0.1 on port 0, then
    another at 127.0.0.3 on that number, failed with EADDRINUSE when another xdist
    worker's port 0 at 127.0.0.3 (a hop, a client bound there) had got it in between.
    Raises OSError when no port is free at all of them in PICK_ATTEMPTS tries."""
    for _attempt in range(PICK_ATTEMPTS):
        held: list[socket.socket] = []
        try:
            for address in addresses:
                sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
                held.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, held[0].getsockname()[1] if len(held) > 1 else 0))
        except OSError as exc:
            for sock in held:
                sock.close()
            if exc.errno == errno.EADDRINUSE:
                continue            # taken at a later address: pick another
            raise
        try:
            yield held[0].getsockname()[1]
        finally:
            for sock in held:
                sock.close()
        return
    raise OSError(errno.EADDRINUSE, f"no port free at all of {', '.join(addresses)}")


async def serve_on_loopback(handle, task_status) -> None:
    """Serve `handle(stream)` on a free loopback port (`held_port`); the port is what
    `nursery.start` returns."""
    with held_port() as port:
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        task_status.started(port)
        await trio.serve_listeners(handle, listeners)


async def command_lines(stream):
    """The client's lines (without CRLF) as they arrive, until it closes the connection."""
    buffer = b""
    while data := await stream.receive_some(4096):
        buffer += data
        while b"\r\n" in buffer:
            line, buffer = buffer.split(b"\r\n", 1)
            yield line


async def size_limited_server(limit: int, connections: list[list[str]], *,
                              extensions: tuple[bytes, ...] = (),
                              task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Announces SIZE `limit` (after `extensions`, e.g. b"8BITMIME") and answers 250 to all
    but QUIT; each connection's command verbs are appended to `connections` as a list."""
    async def handle(stream):
        commands: list[str] = []
        connections.append(commands)
        await stream.send_all(b"220 small.test ESMTP\r\n")
        async for line in command_lines(stream):
            commands.append(line.decode().split(" ")[0].upper())
            if commands[-1] == "EHLO":
                await stream.send_all(b"".join(b"250-%s\r\n" % line for line in
                                               (b"small.test", *extensions))
                                      + b"250 SIZE %d\r\n" % limit)
            elif commands[-1] == "QUIT":
                await stream.send_all(b"221 bye\r\n")
                return
            else:
                await stream.send_all(b"250 ok\r\n")
    await serve_on_loopback(handle, task_status)
