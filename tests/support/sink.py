"""A real SMTP sink server on loopback, for tests: the independent oracle of delivery.

What it owns
    A small, strict-enough ESMTP server written with the standard library only (it must
    NOT share code with core/smtp, so that it can catch our client's mistakes). It listens
    on 127.0.0.1 port 0, records every message it accepts (envelope sender, recipients,
    the unstuffed message bytes) and counts connections: total, open at once (the maximum
    proves `smtp.max_outgoing`) and transactions per connection (proves reuse).

Rules
    1. Correct SMTP: EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, VRFY,
       QUIT, STARTTLS (RFC 3207, when `tls=True`), PIPELINING (replies are written one per
       command, in order, so a pipelined batch just works), 8BITMIME, SMTPUTF8, SIZE,
       ENHANCEDSTATUSCODES. Anything a client pipelined after STARTTLS is discarded, as
       RFC 3207 §4.2 requires: the TLS layer starts on a fresh reader.
    2. Replies are configurable and may be changed while it runs (plain attribute writes
       are atomic enough for the GIL): `tempfail_all`, `rcpt_replies`, `rcpt_reply`,
       `mail_reply`, `data_reply`, `greeting`. `without_extensions` takes keywords off the
       EHLO reply (e.g. {"SMTPUTF8"}); a MAIL parameter of an extension not offered
       (SMTPUTF8, BODY=8BITMIME) is refused with 555, as RFC 5321 §4.1.1.11 allows.
    3. It runs in background threads. Use it as a context manager from sync code, or
       `await nursery.start(sink.serve)` from trio code (the threads stop when the task is
       cancelled). `wait_for` / `await_messages` block until N messages have arrived.

Never: reach the network beyond loopback, sleep to wait for something (use wait_for),
or share a line of code with the project's SMTP implementation.
"""

from __future__ import annotations

import atexit
import functools
import socket
import shutil
import socketserver
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Sink", "ReceivedMessage", "ConnectionRecord", "test_tls_files", "client_tls_context"]

MAX_LINE_OCTETS = 8192        # generous: the sink is an oracle, not a policeman
IDLE_TIMEOUT_SECONDS = 30.0   # a stuck client fails the test instead of hanging forever
DEFAULT_HOSTNAME = "sink.test"

Answer = tuple[int, str]      # (code, text) — text may start with an enhanced status code


@dataclass
class ReceivedMessage:
    """One message the sink accepted with a 250 after DATA."""
    sender: str                      # "" for the null sender <>
    recipients: list[str]
    data: bytes                      # unstuffed, CRLF line endings, without the final ".\r\n"
    connection: int                  # ConnectionRecord.number it arrived on
    is_tls: bool
    helo: str
    mail_params: list[str] = field(default_factory=list)   # e.g. ["BODY=8BITMIME"]

    @property
    def message(self):
        """The data parsed with the email package (policy.default)."""
        import email
        import email.policy
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class ConnectionRecord:
    number: int
    is_tls: bool = False
    helo: str = ""
    transactions: int = 0            # messages accepted on this connection
    commands: list[str] = field(default_factory=list)  # verbs seen, in order (RSET proves reuse)
    closed: bool = False


@functools.lru_cache(maxsize=1)
def test_tls_files() -> tuple[str, str]:
    """(cert_path, key_path) of a self-signed certificate for "localhost" / 127.0.0.1."""
    from shared.tls import make_self_signed
    key_pem, cert_pem = make_self_signed("localhost")
    directory = Path(tempfile.mkdtemp(prefix="mailmoat-sink-tls-"))
    atexit.register(shutil.rmtree, directory, True)   # one per test process, not one per run
    (directory / "cert.pem").write_bytes(cert_pem)
    (directory / "key.pem").write_bytes(key_pem)
    return str(directory / "cert.pem"), str(directory / "key.pem")


def client_tls_context() -> ssl.SSLContext:
    """A client context that trusts only the sink's test certificate."""
    cert, _key = test_tls_files()
    return ssl.create_default_context(cafile=cert)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: a burst of connections (20 delivery attempts at
    # once) overflowed it, and the kernel's SYN retries (1 s, 3 s, 7 s) looked like a
    # slow gateway
    request_queue_size = 128

    def __init__(self, sink: Sink):
        self.sink = sink
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(IDLE_TIMEOUT_SECONDS)
        super().setup()

    def handle(self) -> None:
        sink = self.server.sink
        record = sink._opened()
        try:
            self._session(sink, record)
        except (OSError, ssl.SSLError, _Closed):
            pass
        finally:
            sink._closed(record)

    # --- I/O -----------------------------------------------------------------------------
    def _send(self, code: int, text: str | list[str]) -> None:
        lines = text if isinstance(text, list) else [text]
        out = b"".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n".encode()
                       for i, line in enumerate(lines))
        self.wfile.write(out)
        self.wfile.flush()

    def _line(self) -> bytes:
        line = self.rfile.readline(MAX_LINE_OCTETS)
        if not line:
            raise _Closed()
        return line

    # --- the session ---------------------------------------------------------------------
    def _session(self, sink: Sink, record: ConnectionRecord) -> None:
        greeting = sink.greeting
        if greeting is not None:
            self._send(*greeting)
            if greeting[0] >= 400:
                self._wait_quit()
                return
        else:
            self._send(220, f"{sink.hostname} ESMTP sink")
        sender: str | None = None
        params: list[str] = []
        recipients: list[str] = []
        while True:
            raw = self._line()
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            record.commands.append(verb)
            if verb == "EHLO":
                record.helo, sender, recipients = arg.strip(), None, []
                self._send(250, sink._ehlo_lines(record.is_tls))
            elif verb == "HELO":
                record.helo, sender, recipients = arg.strip(), None, []
                self._send(250, sink.hostname)
            elif verb == "STARTTLS" and sink.tls and not record.is_tls:
                self._send(220, "2.0.0 ready to start TLS")
                self._start_tls(sink, record)
                sender, recipients = None, []
            elif verb == "MAIL":
                if sink.require_tls and not record.is_tls:
                    self._send(530, "5.7.0 must issue a STARTTLS command first")
                    continue
                address, rest = _path(arg, "FROM:")
                if address is None:
                    self._send(501, "5.5.4 syntax: MAIL FROM:<address>")
                elif sender is not None:
                    self._send(503, "5.5.1 nested MAIL command")
                else:
                    answer = sink._mail_answer(address, rest.split(), record.is_tls)
                    self._send(*answer)
                    if answer[0] < 300:
                        sender, params, recipients = address, rest.split(), []
            elif verb == "RCPT":
                address, _rest = _path(arg, "TO:")
                if sender is None:
                    self._send(503, "5.5.1 need MAIL first")
                elif not address:
                    self._send(501, "5.5.4 syntax: RCPT TO:<address>")
                else:
                    answer = sink._rcpt_answer(address)
                    self._send(*answer)
                    if answer[0] < 300:
                        recipients.append(address)
            elif verb == "DATA":
                if sender is None or not recipients:
                    self._send(503 if sender is None else 554,
                               "5.5.1 need MAIL first" if sender is None
                               else "5.5.1 no valid recipients")
                    continue
                self._send(354, "end data with <CR><LF>.<CR><LF>")
                data = self._read_data()
                message = ReceivedMessage(sender=sender, recipients=list(recipients), data=data,
                                          connection=record.number, is_tls=record.is_tls,
                                          helo=record.helo, mail_params=params)
                answer = sink._data_answer(message)
                if answer[0] < 300:
                    sink._accepted(record, message)
                else:
                    sink._rejected(message, answer)
                self._send(*answer)
                sender, recipients = None, []
            elif verb == "RSET":
                sender, recipients = None, []
                self._send(250, "2.0.0 reset")
            elif verb == "NOOP":
                self._send(250, "2.0.0 ok")
            elif verb == "VRFY":
                self._send(252, "2.5.0 cannot verify, will attempt delivery")
            elif verb == "QUIT":
                self._send(221, "2.0.0 bye")
                return
            else:
                self._send(500, "5.5.1 command not recognized")

    def _wait_quit(self) -> None:
        """After a failing greeting only QUIT is useful (RFC 5321 §3.1)."""
        while True:
            if self._line().strip().upper() == b"QUIT":
                self._send(221, "2.0.0 bye")
                return
            self._send(503, "5.5.1 bad sequence of commands")

    def _start_tls(self, sink: Sink, record: ConnectionRecord) -> None:
        self.wfile.flush()
        tls = sink._server_context().wrap_socket(self.request, server_side=True)
        self.request = self.connection = tls
        self.rfile = tls.makefile("rb")     # anything pipelined before TLS is dropped (§4.2)
        self.wfile = tls.makefile("wb")
        record.is_tls = True

    def _read_data(self) -> bytes:
        lines: list[bytes] = []
        while True:
            line = self._line()
            if line in (b".\r\n", b".\n"):
                return b"".join(lines)
            if line.startswith(b"."):
                line = line[1:]                # RFC 5321 §4.5.2 transparency
            if not line.endswith(b"\r\n"):
                line = line.rstrip(b"\n") + b"\r\n"
            lines.append(line)


class _Closed(Exception):
    pass


def _path(arg: str, keyword: str) -> tuple[str | None, str]:
    """("address", "rest") from "FROM:<address> PARAMS"; (None, "") on a syntax error."""
    if not arg[:len(keyword)].upper() == keyword:
        return None, ""
    rest = arg[len(keyword):].lstrip()
    if not rest.startswith("<") or ">" not in rest:
        return None, ""
    address, _, params = rest[1:].partition(">")
    return address, params.strip()


class Sink:
    """An SMTP sink on 127.0.0.1. See the module header for the knobs."""

    def __init__(self, *, tls: bool = False, require_tls: bool = False,
                 hostname: str = DEFAULT_HOSTNAME, pipelining: bool = True) -> None:
        self.tls = tls or require_tls
        self.require_tls = require_tls
        self.hostname = hostname
        self.pipelining = pipelining
        # reply knobs (change at any time)
        self.tempfail_all = False                     # 451 to every RCPT while True
        self.without_extensions: set[str] = set()     # EHLO keywords not offered
        self.greeting: Answer | None = None           # e.g. (421, "4.3.2 busy") or (554, ...)
        self.mail_reply: Answer | None = None
        self.rcpt_replies: dict[str, Answer] = {}     # lower-case address -> answer
        self.rcpt_reply: Callable[[str], Answer | None] | None = None
        self.data_reply: Answer | Callable[[ReceivedMessage], Answer | None] | None = None
        # what happened
        self.messages: list[ReceivedMessage] = []
        self.rejected: list[tuple[ReceivedMessage, Answer]] = []
        self.connections: list[ConnectionRecord] = []
        self.open_connections = 0
        self.max_open_connections = 0
        self._cond = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._context: ssl.SSLContext | None = None

    # --- lifecycle ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "sink not started"
        return self._server.server_address[1]

    host = "127.0.0.1"

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def start(self) -> Sink:
        self._server = _Server(self)
        # socketserver sees a stop only at its next look: stop() waited up to 0.05 s, in
        # each of the hundreds of tests with a sink
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.01},
                                        name=f"sink-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(5)

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    async def serve(self, *, task_status=None) -> None:
        """Trio task: `sink = await nursery.start(Sink().serve)`; stops on cancellation."""
        import trio
        self.start()
        try:
            if task_status is not None:
                task_status.started(self)
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.stop)

    # --- waiting ---------------------------------------------------------------------------
    def wait_for(self, n_messages: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Block until at least *n_messages* were accepted; AssertionError on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= n_messages, timeout):
                raise AssertionError(f"sink got {len(self.messages)} messages, "
                                     f"expected {n_messages} within {timeout} s")
            return list(self.messages)

    async def await_messages(self, n_messages: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """`wait_for` for trio code (runs in a thread; does not block the loop)."""
        import trio
        return await trio.to_thread.run_sync(self.wait_for, n_messages, timeout)

    def messages_to(self, address: str) -> list[ReceivedMessage]:
        with self._cond:
            return [m for m in self.messages
                    if address.lower() in (r.lower() for r in m.recipients)]

    @property
    def transactions_per_connection(self) -> list[int]:
        with self._cond:
            return [c.transactions for c in self.connections]

    # --- called by handlers -------------------------------------------------------------
    def _opened(self) -> ConnectionRecord:
        with self._cond:
            record = ConnectionRecord(number=len(self.connections))
            self.connections.append(record)
            self.open_connections += 1
            self.max_open_connections = max(self.max_open_connections, self.open_connections)
            return record

    def _closed(self, record: ConnectionRecord) -> None:
        with self._cond:
            record.closed = True
            self.open_connections -= 1
            self._cond.notify_all()

    def _accepted(self, record: ConnectionRecord, message: ReceivedMessage) -> None:
        with self._cond:
            record.transactions += 1
            self.messages.append(message)
            self._cond.notify_all()

    def _rejected(self, message: ReceivedMessage, answer: Answer) -> None:
        with self._cond:
            self.rejected.append((message, answer))
            self._cond.notify_all()

    def _ehlo_lines(self, is_tls: bool) -> list[str]:
        lines = [self.hostname, "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "SIZE 104857600"]
        if self.pipelining:
            lines.append("PIPELINING")
        if self.tls and not is_tls:
            lines.append("STARTTLS")
        return [lines[0], *(line for line in lines[1:]
                            if line.split()[0] not in self.without_extensions)]

    def _mail_answer(self, address: str, params: list[str], is_tls: bool) -> Answer:
        offered = {line.split()[0] for line in self._ehlo_lines(is_tls)[1:]}
        for param in params:
            keyword = {"SMTPUTF8": "SMTPUTF8", "BODY=8BITMIME": "8BITMIME"}.get(param.upper())
            if keyword is not None and keyword not in offered:
                return 555, f"5.5.4 {param} not offered"
        return self.mail_reply or (250, "2.1.0 sender ok")

    def _rcpt_answer(self, address: str) -> Answer:
        if self.tempfail_all:
            return 451, "4.3.0 sink says try again later"
        answer = self.rcpt_replies.get(address.lower())
        if answer is None and self.rcpt_reply is not None:
            answer = self.rcpt_reply(address)
        return answer or (250, "2.1.5 recipient ok")

    def _data_answer(self, message: ReceivedMessage) -> Answer:
        reply = self.data_reply
        if callable(reply):
            reply = reply(message)
        return reply or (250, f"2.0.0 queued as {len(self.messages) + len(self.rejected)}")

    def _server_context(self) -> ssl.SSLContext:
        if self._context is None:
            cert, key = test_tls_files()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._context = context
        return self._context


def open_client(sink: Sink, timeout: float = 5.0) -> socket.socket:
    """A plain TCP connection to the sink (for raw-bytes tests)."""
    return socket.create_connection(sink.address, timeout=timeout)
