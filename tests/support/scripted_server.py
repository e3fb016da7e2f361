"""Hand-scripted SMTP servers for delivery tests: what the real sink (sink.py) will not do —
never answer, break TLS, announce a SIZE limit. Each test writes its script as a `handle`
coroutine; these serve it on loopback and read its command lines."""

from __future__ import annotations

import trio

__all__ = ["serve_on_loopback", "command_lines", "size_limited_server"]


async def serve_on_loopback(handle, task_status) -> None:
    """Serve `handle(stream)` on a free loopback port; the port is what `nursery.start`
    returns."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
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
