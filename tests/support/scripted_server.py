"""Hand-scripted SMTP servers for delivery tests: what the real sink (sink.py) will not do —
never answer, break TLS, announce a SIZE limit. Each test writes its script as a `handle`
coroutine; these serve it on loopback and read its command lines."""

from __future__ import annotations

import trio

__all__ = ["serve_on_loopback", "command_lines"]


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
