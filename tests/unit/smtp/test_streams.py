"""core/smtp/streams.py: TcpStream over real sockets (socketpairs and loopback TCP)."""

from __future__ import annotations

import socket
import ssl

import pytest
import trio
import trio.testing

from core.smtp.streams import FAIR_RECEIVES, TcpStream, connect_tcp
from shared.tls import make_self_signed

pytestmark = pytest.mark.trio


def _pair() -> tuple[TcpStream, TcpStream]:
    a, b = socket.socketpair()
    return TcpStream(a), TcpStream(b)


async def test_bytes_go_both_ways_and_a_large_send_arrives_whole():
    left, right = _pair()
    payload = bytes(range(256)) * 40_000          # ~10 MB: many partial sends and waits
    received = bytearray()

    async def read_all():
        while len(received) < len(payload):
            data = await right.receive_some(65536)
            assert data
            received.extend(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all)
        await left.send_all(payload)
    assert received == payload
    await right.send_all(b"250 ok\r\n")
    assert await left.receive_some() == b"250 ok\r\n"
    await left.send_eof()
    assert await right.receive_some(10) == b""     # end of file after the half-close
    await left.aclose()
    await right.aclose()


async def test_errors_are_socketstreams():
    left, right = _pair()
    await left.aclose()
    await left.aclose()                            # twice is fine
    with pytest.raises(trio.ClosedResourceError):
        await left.send_all(b"x")
    with pytest.raises(trio.ClosedResourceError):
        await left.receive_some(10)
    # the peer is gone: sending fails as a broken stream (EPIPE / ECONNRESET)
    with pytest.raises(trio.BrokenResourceError):
        for _ in range(100):
            await right.send_all(b"x" * 65536)
    await right.aclose()


async def test_closing_wakes_a_waiting_receive():
    left, right = _pair()
    async with trio.open_nursery() as nursery:
        async def receive():
            with pytest.raises(trio.ClosedResourceError):
                await left.receive_some(10)
        nursery.start_soon(receive)
        await trio.testing.wait_all_tasks_blocked()
        await left.aclose()
    await right.aclose()


async def test_a_sender_that_never_stops_cannot_hold_the_event_loop():
    """Data that is always waiting must not starve other tasks or hide a deadline."""
    left, right = _pair()
    await left.send_all(b"x" * (FAIR_RECEIVES * 4))
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await trio.sleep(0)
        before = ticks
        for _ in range(FAIR_RECEIVES * 4):
            assert await right.receive_some(1) == b"x"
        assert ticks - before >= 3                 # the other task ran meanwhile
        nursery.cancel_scope.cancel()

    await left.send_all(b"y" * (FAIR_RECEIVES * 2))
    with trio.CancelScope(deadline=trio.current_time() - 1) as scope:   # already passed
        for _ in range(FAIR_RECEIVES * 2):
            await right.receive_some(1)
    assert scope.cancelled_caught
    await left.aclose()
    await right.aclose()


async def test_a_waiting_receive_obeys_a_deadline():
    left, right = _pair()
    with trio.move_on_after(0.05) as scope:
        await right.receive_some(10)
    assert scope.cancelled_caught
    await left.aclose()
    await right.aclose()


async def test_connect_tcp_and_tls_on_top(tmp_path):
    """connect_tcp over loopback, and trio.SSLStream wrapping TcpStream (STARTTLS)."""
    key_pem, cert_pem = make_self_signed("localhost")
    (tmp_path / "key.pem").write_bytes(key_pem)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_context = ssl.create_default_context()
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]

    async def serve():
        await trio.lowlevel.wait_readable(listener)
        conn, _ = listener.accept()
        stream = trio.SSLStream(TcpStream(conn), server_context, server_side=True)
        assert await stream.receive_some(100) == b"EHLO x\r\n"
        await stream.send_all(b"250 hello\r\n")
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        client = await connect_tcp("127.0.0.1", port)
        assert client.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        tls = trio.SSLStream(client, client_context, server_hostname="localhost")
        await tls.send_all(b"EHLO x\r\n")
        assert await tls.receive_some(100) == b"250 hello\r\n"
        await tls.aclose()
    listener.close()
    with pytest.raises(OSError):
        await connect_tcp("127.0.0.1", port)       # nobody listens now: refused
