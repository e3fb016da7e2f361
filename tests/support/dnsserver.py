"""A real DNS server on loopback for tests (dnslib for the wire format, stdlib sockets).

What it owns
    Authoritative answers for the records a test declares — MX (with preferences, null MX
    "."), A, AAAA, PTR, TXT — over UDP and TCP on the same 127.0.0.1 port (port 0 picks a
    free one), plus failures on purpose for a name: NXDOMAIN, SERVFAIL, or no answer at all
    (a timeout), and answers held back until another name has been asked (to show that
    two lookups run side by side).

Rules
    1. A name with no records at all answers NXDOMAIN; a name with records but none of the
       asked type answers NOERROR with an empty answer (NODATA), as a real server does.
    2. Names are case-insensitive and compared without the trailing dot.
    3. Records may be added while it runs (the tables are read under a lock).
    4. `resolver` is the "127.0.0.1:PORT" string for the `dns.resolvers` setting.

Never: forward or recurse to another server — nothing leaves the machine.

    with DnsServer() as dns:
        dns.add_mx("example.test", 10, "mx1.example.test")
        dns.add_a("mx1.example.test", "127.0.0.1")
        settings["dns.resolvers"] = [dns.resolver]
"""

from __future__ import annotations

import ipaddress
import socket
import socketserver
import struct
import threading
import time
from collections import defaultdict

from dnslib import AAAA, MX, PTR, QTYPE, RCODE, RR, SOA, TXT, A, DNSLabel, DNSRecord

__all__ = ["DnsServer"]

DEFAULT_TTL_SECONDS = 60
TCP_TIMEOUT_SECONDS = 5.0
HOLD_SECONDS = 10.0


def _key(name: str) -> str:
    return name.lower().rstrip(".")


class DnsServer:
    def __init__(self) -> None:
        self._records: dict[str, list[RR]] = defaultdict(list)
        self._failures: dict[str, str] = {}          # name -> "nxdomain" | "servfail" | "timeout"
        self._soas: dict[str, RR] = {}               # zone -> SOA sent with its NXDOMAINs
        self._lock = threading.Lock()
        self._asked = threading.Condition(self._lock)
        self._holds: dict[str, str] = {}             # name -> the name that releases it
        self.queries: list[tuple[str, str]] = []     # (name, type) in arrival order
        self.delay_seconds = 0.0                     # every answer this late (a slow server)
        self._udp: socketserver.ThreadingUDPServer | None = None
        self._tcp: socketserver.ThreadingTCPServer | None = None
        self._threads: list[threading.Thread] = []

    # --- declaring records ----------------------------------------------------------------
    def add(self, name: str, rtype: str, rdata, ttl: int = DEFAULT_TTL_SECONDS) -> DnsServer:
        rr = RR(rname=DNSLabel(_key(name) + "."), rtype=getattr(QTYPE, rtype), rdata=rdata,
                ttl=ttl)
        with self._lock:
            self._records[_key(name)].append(rr)
        return self

    def add_mx(self, name: str, preference: int, exchange: str) -> DnsServer:
        """`exchange` "." declares a null MX (RFC 7505)."""
        label = "." if exchange == "." else _key(exchange) + "."
        return self.add(name, "MX", MX(label, preference))

    def add_a(self, name: str, address: str = "127.0.0.1") -> DnsServer:
        return self.add(name, "A", A(address))

    def add_aaaa(self, name: str, address: str = "::1") -> DnsServer:
        return self.add(name, "AAAA", AAAA(address))

    def add_txt(self, name: str, text: str) -> DnsServer:
        return self.add(name, "TXT", TXT(text))

    def add_ptr(self, address_or_name: str, target: str) -> DnsServer:
        """PTR for an IP address (its in-addr.arpa / ip6.arpa name is computed) or a name."""
        try:
            name = ipaddress.ip_address(address_or_name).reverse_pointer
        except ValueError:
            name = address_or_name
        return self.add(name, "PTR", PTR(_key(target) + "."))

    def add_soa(self, zone: str, ttl: int, minimum: int) -> DnsServer:
        """Make *zone* authoritative: its NXDOMAIN answers carry this SOA in the authority
        section (RFC 2308: the negative-caching TTL is min(TTL, MINIMUM))."""
        rr = RR(rname=DNSLabel(_key(zone) + "."), rtype=QTYPE.SOA, ttl=ttl,
                rdata=SOA(f"ns.{_key(zone)}.", f"hostmaster.{_key(zone)}.",
                          (1, 3600, 600, 86400, minimum)))
        with self._lock:
            self._soas[_key(zone)] = rr
        return self

    def fail(self, name: str, how: str) -> DnsServer:
        """Make every query for *name* fail: "nxdomain", "servfail" or "timeout" (no answer)."""
        if how not in ("nxdomain", "servfail", "timeout"):
            raise ValueError(how)
        with self._lock:
            self._failures[_key(name)] = how
        return self

    def hold(self, name: str, until_asked: str) -> DnsServer:
        """Answer *name* only once *until_asked* has been asked; if it is not asked within
        HOLD_SECONDS, stay silent (a timeout)."""
        with self._lock:
            self._holds[_key(name)] = _key(until_asked)
        return self

    def clear(self, name: str) -> None:
        with self._lock:
            self._records.pop(_key(name), None)
            self._failures.pop(_key(name), None)

    # --- lifecycle --------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._udp is not None, "DNS server not started"
        return self._udp.server_address[1]

    @property
    def resolver(self) -> str:
        """The value for the `dns.resolvers` setting."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> DnsServer:
        for _attempt in range(20):   # UDP port 0, then TCP on the same number (rarely taken)
            udp = _UdpServer(self)
            try:
                tcp = _TcpServer(self, udp.server_address[1])
            except OSError:
                udp.server_close()
                continue
            break
        else:
            raise OSError("no free port for UDP and TCP together")
        self._udp, self._tcp = udp, tcp
        for server in (udp, tcp):
            # a stop is seen at the next look (0.05 s cost each server's stop that much)
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                                      daemon=True, name=f"dns-{self.port}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self._udp, self._tcp):
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    # --- answering ----------------------------------------------------------------------------
    def answer(self, query: bytes) -> bytes | None:
        """The reply packet for *query*, or None to stay silent (a timeout on purpose)."""
        request = DNSRecord.parse(query)
        reply = request.reply()
        name = _key(str(request.q.qname))
        qtype = request.q.qtype
        with self._lock:
            self.queries.append((name, QTYPE[qtype]))
            self._asked.notify_all()
            release = self._holds.get(name)
            if release is not None and not self._asked.wait_for(
                    lambda: any(asked == release for asked, _type in self.queries),
                    HOLD_SECONDS):
                return None
            how = self._failures.get(name)
            records = list(self._records.get(name, ()))
            soa = next((rr for zone, rr in self._soas.items()
                        if name == zone or name.endswith("." + zone)), None)
        if how == "timeout":
            return None
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if how == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
        elif how == "nxdomain" or not records:
            reply.header.rcode = RCODE.NXDOMAIN
            if soa is not None:
                reply.add_auth(soa)
        else:
            for rr in records:
                if rr.rtype == qtype or qtype == QTYPE.ANY:
                    reply.add_answer(rr)
        return reply.pack()


class _UdpServer(socketserver.ThreadingUDPServer):
    daemon_threads = True

    def __init__(self, dns: DnsServer):
        self.dns = dns
        super().__init__(("127.0.0.1", 0), _UdpHandler)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, dns: DnsServer, port: int):
        self.dns = dns
        super().__init__(("127.0.0.1", port), _TcpHandler)


class _UdpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        try:
            reply = self.server.dns.answer(data)
        except Exception:        # a garbage packet: no answer, like a real server
            return
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TcpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(TCP_TIMEOUT_SECONDS)
        try:
            while True:
                header = _recv_exactly(self.request, 2)
                if header is None:
                    return
                query = _recv_exactly(self.request, struct.unpack("!H", header)[0])
                if query is None:
                    return
                reply = self.server.dns.answer(query)
                if reply is None:
                    return
                self.request.sendall(struct.pack("!H", len(reply)) + reply)
        except Exception:        # a broken peer or packet ends this connection only
            return


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data
