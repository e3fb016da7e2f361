"""A scripted next hop on loopback and one delivery attempt through core.delivery, for the
tests of how the outbound client answers what a next hop says (tests/integration/
test_delivery_next_hop_answers.py, test_delivery_loop.py)."""

from __future__ import annotations

from contextlib import nullcontext
from types import MappingProxyType

import trio

from core.delivery import Deliverer, NextHop
from shared.settings import defaults
from shared.spool import Envelope
from tests.support.scripted_server import (HOP_ADDRESSES, command_lines, held_port,
                                            serve_on_loopback)

__all__ = ["MESSAGE", "CLOSE", "ScriptedHop", "Recorder", "snapshot", "deliver", "relay_to",
           "two_mx_hosts"]

MESSAGE = b"Subject: answers\r\n\r\nhello\r\n"
CLOSE = "CLOSE"                  # a stage's script: close without a word


class ScriptedHop:
    """A next hop answering each stage from its script: `greeting`, `ehlo`, `helo`,
    `starttls`, `mail`, `rcpt` (or `rcpt:<address>` for one), `data`, `end` (or `end#N`
    for the N-th message it receives), `rset`, `quit`. A reply is its lines without the
    last CRLF; one ending in b"|close" closes the connection after it is sent; CLOSE
    closes without a word. With `tls` (a server context) a 220 to STARTTLS is followed by
    the handshake, and the stages in `after_tls` replace theirs for the rest of that
    connection. `connections` has each connection's lines, the client's prefixed "C: ",
    and `messages` the content of each message up to its dot."""

    DEFAULTS = {
        "greeting": b"220 hop.test ESMTP", "ehlo": b"250-hop.test\r\n250 ENHANCEDSTATUSCODES",
        "helo": b"250 hop.test", "starttls": b"454 4.7.0 TLS not available",
        "mail": b"250 2.1.0 ok", "rcpt": b"250 2.1.5 ok", "data": b"354 go ahead",
        "end": b"250 2.0.0 queued", "rset": b"250 2.0.0 ok", "quit": b"221 2.0.0 bye",
    }

    def __init__(self, *, tls=None, after_tls=None, **script):
        self.script = {**self.DEFAULTS, **{k.replace("_", ":"): v for k, v in script.items()}}
        self.tls = tls
        self.after_tls = after_tls or {}
        self.connections: list[list[str]] = []
        self.messages: list[bytes] = []

    @property
    def verbs(self) -> list[list[str]]:
        """Each connection's command verbs."""
        return [[line[3:7].upper() for line in lines if line.startswith("C: ")]
                for lines in self.connections]

    async def serve(self, host: str = "127.0.0.1", port: int = 0, *,
                    task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Serve at host:port until cancelled; `nursery.start` returns the port. Port 0
        is a `held_port`, at which other hops may serve at the other HOP_ADDRESSES."""
        with held_port(tuple(dict.fromkeys((host, *HOP_ADDRESSES)))) if port == 0 \
                else nullcontext(port) as port:
            listeners = await trio.open_tcp_listeners(port, host=host)
            task_status.started(port)
            await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream) -> None:
        lines: list[str] = []
        self.connections.append(lines)
        script = dict(self.script)

        async def answer(stage: str) -> bool:
            """Say the stage's reply; False once the connection is closed."""
            reply = script[stage]
            if reply == CLOSE:
                await stream.aclose()
                return False
            closing = reply.endswith(b"|close")
            reply = reply.removesuffix(b"|close")
            lines.append("S: " + reply.decode())
            await stream.send_all(reply + b"\r\n")
            if closing:
                await stream.aclose()
            return not closing

        try:
            if not await answer("greeting"):
                return
            body: bytearray | None = None
            lines_in = command_lines(stream)
            while (line := await anext(lines_in, None)) is not None:
                if body is not None:
                    if line != b".":
                        body += line + b"\r\n"
                        continue
                    self.messages.append(bytes(body))
                    body = None
                    stage = f"end#{len(self.messages)}"
                    if not await answer(stage if stage in script else "end"):
                        return
                    continue
                text = line.decode()
                lines.append("C: " + text)
                verb = text[:4].upper()
                stage = {"EHLO": "ehlo", "HELO": "helo", "STAR": "starttls", "MAIL": "mail",
                         "DATA": "data", "RSET": "rset", "QUIT": "quit"}.get(verb, "rcpt")
                if verb == "RCPT":
                    address = text.partition("<")[2].partition(">")[0]
                    stage = f"rcpt:{address}" if f"rcpt:{address}" in script else "rcpt"
                if not await answer(stage):
                    return
                if verb == "DATA" and script["data"].startswith(b"354"):
                    body = bytearray()
                elif verb == "QUIT":
                    await stream.aclose()
                    return
                elif verb == "STAR" and self.tls is not None \
                        and script["starttls"].startswith(b"220"):
                    stream = trio.SSLStream(stream, self.tls, server_side=True)
                    await stream.do_handshake()
                    lines.append("-- TLS")
                    script.update(self.after_tls)
                    lines_in = command_lines(stream)    # the rest is read over TLS
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


class Recorder:
    """Stands in for EventWriter: keeps (action, fields) in memory."""

    def __init__(self):
        self.events = []

    def record(self, action, **fields):
        self.events.append((action, fields))


def snapshot(dns_server=None, **overrides):
    values = dict(defaults())
    values.update({"smtp.hostname": "gw.test", "dns.timeout_seconds": 1,
                   "dns.resolvers": [dns_server.resolver] if dns_server else ["127.0.0.1:9"]})
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return MappingProxyType(values)


async def deliver(tmp_path, settings, hop: NextHop, recipients=("bob@dest.test",)):
    """One delivery attempt of MESSAGE: (results, events)."""
    path = tmp_path / "message"
    path.write_bytes(MESSAGE)
    envelope = Envelope.new("Q1", "alice@sender.test", list(recipients))
    envelope.size = len(MESSAGE)
    events = Recorder()
    deliverer = Deliverer(settings=lambda: settings, events=events)
    try:
        results = await deliverer.deliver(hop, envelope, list(recipients), path)
    finally:
        await deliverer.aclose()
    return results, events


async def relay_to(nursery, hop: ScriptedHop) -> NextHop:
    return NextHop("relay", "127.0.0.1", await nursery.start(hop.serve))


async def two_mx_hosts(nursery, dns_server, first: ScriptedHop, second: ScriptedHop,
                       domain: str = "dest.test"):
    """`domain`'s MX hosts: mx1 (preference 10) is `first` on 127.0.0.3, mx2 (20) is
    `second` on 127.0.0.1, on one port; the settings routing `domain` to its MX there."""
    port = await nursery.start(second.serve)
    await nursery.start(first.serve, "127.0.0.3", port)
    dns_server.add_mx(domain, 10, f"mx1.{domain}").add_mx(domain, 20, f"mx2.{domain}")
    dns_server.add_a(f"mx1.{domain}", "127.0.0.3").add_a(f"mx2.{domain}", "127.0.0.1")
    return snapshot(dns_server, routing__local=[{"match": domain, "port": port}])


async def silent_host(nursery) -> tuple[int, trio.Event]:
    """A host on 127.0.0.1 that takes connections and never greets: (its port, an event set
    when a client reaches it)."""
    reached = trio.Event()

    async def silent(stream):
        reached.set()
        await trio.sleep_forever()

    return await nursery.start(serve_on_loopback, silent), reached
