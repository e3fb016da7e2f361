"""clamd's wire basics, shared by the core's clamd engine (core/scan/clamd.py) and the
console's PING when Antivirus Settings are saved (console/antivirus/engine_check.py): where
an `av.clamd.address` points, a connection there within a time limit, zPING/PONG, and the
words for clamd not answering.

Protocol (clamd(8)): a command is `z<NAME>\\0`; clamd answers one line, NUL-terminated;
`zPING` is answered `PONG`.

Rules
    1. Nothing here imports a scanning engine (review14 D1): the console asks clamd
       whether it answers without loading the builtin engine and the unpackers (numpy,
       pyahocorasick) into its process. The console imports no core code at all.
    2. Every socket operation has the caller's time limit; nothing here waits longer.
    3. Why clamd did not answer is said in one set of words (`unreachable`, `failed`,
       TIMED_OUT, NO_ANSWER), which the scan_error, the Status page's Virus scanning row
       and the settings page's warning all show: one reason, one wording.
    4. Nothing here notes a Contact (core/scan/clamd.py rule 6): whether clamd answers is
       told from the scans, which are what mail meets.
"""

from __future__ import annotations

import socket

__all__ = ["parse_address", "connect", "ping_problem", "unreachable", "failed",
           "TIMED_OUT", "NO_ANSWER"]

TIMED_OUT = "timed out"
NO_ANSWER = "closed the connection without an answer"
MAX_PING_REPLY_OCTETS = 64


def unreachable(exc: OSError) -> str:
    """The problem when the connect failed (rule 3)."""
    return f"unreachable: {exc.strerror or exc}"


def failed(exc: OSError) -> str:
    """The problem when the connection failed after it was made (rule 3)."""
    return f"failed: {exc.strerror or exc}"


def parse_address(address: str):
    """(family, sockaddr) for "host:port", "[v6]:port" or a unix socket path ("unix:" may
    precede it); ValueError for anything else."""
    address = address.strip()
    if address.startswith("/") or address.startswith("unix:"):
        return socket.AF_UNIX, address.removeprefix("unix:")
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit():
        raise ValueError(f"bad clamd address {address!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, int(port))


def connect(address: str, seconds: float) -> socket.socket:
    """A socket connected to clamd at `address` within `seconds`, with `seconds` as its
    timeout. ValueError for an address parse_address cannot read; OSError (socket.timeout
    among them) when the connect fails, the socket closed."""
    family, where = parse_address(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(seconds)
    try:
        sock.connect(where)
    except BaseException:
        sock.close()
        raise
    return sock


def ping_problem(address: str, seconds: float) -> str | None:
    """None when clamd at `address` answers PING with PONG; else why not, in rule 3's words.
    Blocks the calling thread up to twice `seconds`: the connect, then the reply."""
    try:
        sock = connect(address, seconds)
    except ValueError as exc:
        return str(exc)
    except OSError as exc:
        return unreachable(exc)
    try:
        with sock:
            sock.sendall(b"zPING\0")
            reply = sock.recv(MAX_PING_REPLY_OCTETS).rstrip(b"\0\n")
    except socket.timeout:
        return TIMED_OUT
    except OSError as exc:
        return failed(exc)
    if reply == b"PONG":
        return None
    if not reply:
        return NO_ANSWER
    return f"answered {reply[:60].decode('utf-8', 'replace')!r} to PING"
