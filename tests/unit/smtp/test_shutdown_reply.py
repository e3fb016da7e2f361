"""A clean stop must not make a client send a queued message again (SPEC §4: duplicates only
after a crash). A session whose message is committed when shutdown comes still sends its 250
(core/smtp/reception.py, finish), over TLS too, and a hand-over to a queue manager that has
already stopped does not cost it that 250. Found by an exploratory test: a plain SIGTERM of
the core delivered 1 to 4 of 1500 messages twice (the hand-over raised BrokenResourceError,
read by the session as a lost connection)."""

from __future__ import annotations

import smtplib
import ssl

import pytest
import trio

from core.smtp.group_commit import GroupCommitter
from core.smtp.server import SmtpServer
from core.status import Counters
from shared.clock import SYSTEM_CLOCK
from shared.settings import defaults
from shared.spool import Spool
from shared.tls import make_self_signed

MESSAGE = b"Subject: hi\r\n\r\nhello\r\n"


class _Events:
    def record(self, action, **fields):
        pass


class _CommitThenShutDown(GroupCommitter):
    """Commits, then cancels the listener's scope: the shutdown arrives between the commit
    and the 250."""

    shutdown: trio.CancelScope

    async def commit(self, pending):
        await super().commit(pending)
        self.shutdown.cancel()


def _tls_context(tmp_path) -> ssl.SSLContext:
    key, cert = make_self_signed("gw.test")
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "cert.pem").write_bytes(cert)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def _send(port: int, tls: bool) -> str:
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    client.ehlo("client.test")
    if tls:
        client.starttls(context=ssl._create_unverified_context())
        client.ehlo("client.test")
    client.sendmail("a@outside.test", ["b@local.test"], MESSAGE)
    # the QUIT may meet the shutdown's 421 (the message was queued all the same)
    client.close()
    return "queued"


async def _session_with_shutdown(tmp_path, *, tls: bool, on_accepted) -> tuple[list, list]:
    """One client sends one message; shutdown comes right after its commit. Returns what
    the client saw and the queue ids in fast/."""
    settings = {**defaults(), "smtp.port": 0, "smtp.listen": ["127.0.0.1"],
                "relay.mode": "allow"}
    spool = Spool(tmp_path / "spool")
    committer = _CommitThenShutDown(spool)
    context = _tls_context(tmp_path) if tls else None
    server = SmtpServer(settings=lambda: settings, spool=spool, committer=committer,
                        events=_Events(), counters=Counters(), clock=SYSTEM_CLOCK,
                        on_accepted=on_accepted, ssl_context=lambda: context,
                        diagnostics_dir=tmp_path, hostname=lambda: "gw.test")
    seen: list = []

    async def client(stop):
        while not server.bound:
            await trio.sleep(0.01)
        try:
            seen.append(await trio.to_thread.run_sync(_send, server.bound[0][1], tls))
        except (smtplib.SMTPException, OSError) as exc:
            seen.append(repr(exc))
        stop.cancel()

    async with trio.open_nursery() as nursery:
        await nursery.start(committer.run)
        with trio.CancelScope() as listening:
            committer.shutdown = listening
            nursery.start_soon(client, nursery.cancel_scope)
            await server.serve()
    return seen, list(spool.list("fast"))


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
async def test_a_message_queued_as_shutdown_comes_gets_its_250(tmp_path, tls):
    accepted = []
    seen, queued = await _session_with_shutdown(
        tmp_path, tls=tls, on_accepted=lambda queue_id, *_: accepted.append(queue_id))
    assert queued == accepted and len(queued) == 1
    assert seen == ["queued"], "no 250 for a queued message: the client sends it again"


async def test_a_hand_over_to_a_stopped_queue_manager_does_not_cost_the_250(tmp_path):
    def stopped_queue_manager(queue_id, *_):
        raise trio.BrokenResourceError      # its workers' channel is closed at shutdown

    seen, queued = await _session_with_shutdown(tmp_path, tls=False,
                                                on_accepted=stopped_queue_manager)
    assert len(queued) == 1
    assert seen == ["queued"], "no 250 for a queued message: the client sends it again"


def _plain_server(tmp_path, **changes) -> SmtpServer:
    """A listener on a free loopback port that accepts and forgets (nothing is sent)."""
    settings = {**defaults(), "smtp.port": 0, "smtp.listen": ["127.0.0.1"], **changes}
    spool = Spool(tmp_path / "spool")
    return SmtpServer(settings=lambda: settings, spool=spool, committer=GroupCommitter(spool),
                      events=_Events(), counters=Counters(), clock=SYSTEM_CLOCK,
                      on_accepted=lambda *a: None, ssl_context=lambda: None,
                      diagnostics_dir=tmp_path, hostname=lambda: "gw.test")


async def test_an_open_session_is_told_421_when_the_listener_stops(tmp_path):
    """RFC 5321 §3.8: a server shutting down closes its sessions with 421, which a client
    reads as "try again later" rather than a broken connection (soak test)."""
    server = _plain_server(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        stream = await trio.open_tcp_stream(*server.bound[0])
        greeting = await stream.receive_some(512)
        await stream.send_all(b"EHLO client.test\r\n")
        while b"250 " not in await stream.receive_some(4096):
            pass
        nursery.cancel_scope.cancel()
    assert greeting.startswith(b"220 ")
    assert await stream.receive_some(512) == b"421 4.3.2 Service shutting down, closing " \
        b"transmission channel\r\n"


async def test_a_connection_waiting_for_a_session_slot_is_told_421_too(tmp_path):
    server = _plain_server(tmp_path, **{"smtp.max_incoming": 1})
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        served = await trio.open_tcp_stream(*server.bound[0])
        assert (await served.receive_some(512)).startswith(b"220 ")
        waiting = await trio.open_tcp_stream(*server.bound[0])     # no slot: no greeting
        with trio.move_on_after(0.3):
            assert await waiting.receive_some(512) == b"", "greeted without a free slot"
        nursery.cancel_scope.cancel()
    assert await waiting.receive_some(512) == b"421 4.3.2 Service shutting down, closing " \
        b"transmission channel\r\n"
