"""A lean trio stream over a connected TCP socket, for the SMTP sessions in and out.

trio.SocketStream wraps every send and receive in several layers: a conflict detector, a
context manager that tries the call, a cancellation check before it and a scheduling point
after it. In SMTP every command and every reply is one small send or receive, and those
layers cost as much again as the system calls (a ping-pong over a socketpair: 19-27 µs of
CPU per operation with SocketStream, 9 µs with this stream). `TcpStream` makes the system
call directly and goes through trio only to wait for a socket that is not ready.

Rules:
- `send_all` ends with one scheduling point, as SocketStream's does. The peer usually
  answers while other tasks run, so the next receive finds its data; without that yield
  nearly every receive met EAGAIN and paid an epoll registration (measured when a stream
  without it was tried).
- `receive_some` returns data already waiting without a scheduling point, but takes one at
  least every FAIR_RECEIVES receives in a row: a fast sender cannot hold the event loop,
  and a deadline that passed is noticed.
- Errors are SocketStream's: ClosedResourceError after `aclose`, BrokenResourceError for a
  failed send or receive (the OSError is its cause).
- One task sends and one receives at a time (an SMTP session's shape); misuse is not
  detected as SocketStream does.
- It is a trio.abc.HalfCloseableStream, so trio.SSLStream wraps it for STARTTLS.
"""

from __future__ import annotations

import errno
import socket
from contextlib import suppress

import trio
import trio.lowlevel as ll

__all__ = ["TcpStream", "connect_tcp", "FAIR_RECEIVES"]

FAIR_RECEIVES = 16


class TcpStream(trio.abc.HalfCloseableStream):
    def __init__(self, sock: socket.socket):
        sock.setblocking(False)
        with suppress(OSError):     # e.g. a socketpair, or a peer that already reset
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket = sock
        self._closed = False
        self._receives_without_yield = 0

    def _broken(self, exc: OSError) -> trio.BrokenResourceError:
        if exc.errno == errno.EBADF or self._closed:
            return trio.ClosedResourceError("the stream was closed")
        return trio.BrokenResourceError(f"socket connection broken: {exc}")

    async def send_all(self, data) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream was closed")
        sock = self.socket
        with memoryview(data) as view:
            sent = 0
            while sent < len(view):
                try:
                    sent += sock.send(view[sent:])
                except BlockingIOError:
                    await ll.wait_writable(sock)
                except OSError as exc:
                    raise self._broken(exc) from exc
        await ll.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream was closed")
        await ll.wait_writable(self.socket)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError("the stream was closed")
        sock = self.socket
        size = max_bytes or 65536
        try:
            data = sock.recv(size)
        except BlockingIOError:
            pass
        except OSError as exc:
            raise self._broken(exc) from exc
        else:
            self._receives_without_yield += 1
            if self._receives_without_yield >= FAIR_RECEIVES:
                self._receives_without_yield = 0
                await ll.checkpoint()
            return data
        self._receives_without_yield = 0
        while True:
            await ll.wait_readable(sock)
            try:
                return sock.recv(size)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise self._broken(exc) from exc

    async def send_eof(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream was closed")
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise self._broken(exc) from exc
        await ll.checkpoint()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            ll.notify_closing(self.socket)
            self.socket.close()
        await ll.checkpoint()


async def connect_tcp(address: str, port: int) -> TcpStream:
    """A TcpStream connected to an IP address (trio's socket does the waiting)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        await sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return TcpStream(socket.socket(family, socket.SOCK_STREAM, fileno=sock.detach()))
