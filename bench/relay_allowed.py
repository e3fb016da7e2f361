"""relay.allowed at its maximum (10,000 entries, SPEC §3) against a short list: what the SMTP
session asks of it on the listener's event loop (core/smtp/policy.py) — `listed_relay_client`
at each RCPT and `relay_needs_ptr` at each session.

    python -m bench.relay_allowed [--entries 10000] [--small 10] [--calls 2000]

The lists are the scale19 finding's (A2): N-1 networks `10.a.b.0/24` and the client,
127.0.0.1, last; plus, for the PTR case, N-1 `*.hN.example` names and `*.mail.example.test`
last, asked with the PTR name `mx1.mail.example.test`. Each list is a new settings snapshot
read once (the first call, "compile") and then asked `--calls` times with that snapshot, as
a listener does between two settings changes. Prints each cost and the ratio big/small.
Before the list was read once per change, every RCPT parsed each entry as a network: 111 ms
per RCPT and 149 ms per session at 10,000 (a ratio near 1,000). Wall-clock figures: read
them, do not assert on them.
"""

from __future__ import annotations

import argparse
import time

from core.smtp.policy import listed_relay_client, relay_needs_ptr


def networks(count: int) -> list[str]:
    return [f"10.{i >> 8 & 255}.{i & 255}.0/24" for i in range(count - 1)] + ["127.0.0.1"]


def hosts(count: int) -> list[str]:
    return [f"*.h{i}.example" for i in range(count - 1)] + ["*.mail.example.test"]


def _settings(entries: list[str]) -> dict:
    return {"relay.mode": "deny_except", "relay.allowed": list(entries)}


def _timed(call, calls: int) -> tuple[float, float]:
    """(seconds of the first call, seconds per call after it)."""
    began = time.perf_counter()
    call()
    first = time.perf_counter() - began
    began = time.perf_counter()
    for _ in range(calls):
        call()
    return first, (time.perf_counter() - began) / calls


def run(entries: int, small: int, calls: int) -> list[tuple[str, float, float, float, float]]:
    """Per case: (name, first call big, per call big, first call small, per call small)."""
    cases = [
        ("RCPT, listed address last", networks,
         lambda s: listed_relay_client("127.0.0.1", None, s)),
        ("RCPT, address not listed", networks,
         lambda s: listed_relay_client("192.0.2.7", None, s)),
        ("RCPT, PTR name under a *.domain", hosts,
         lambda s: listed_relay_client("192.0.2.7", "mx1.mail.example.test", s)),
        ("session, relay_needs_ptr", networks, relay_needs_ptr),
    ]
    rows = []
    for name, make, ask in cases:
        big, little = _settings(make(entries)), _settings(make(small))
        assert ask(big) == ask(little)      # the same answer from either list
        rows.append((name, *_timed(lambda: ask(big), calls),
                     *_timed(lambda: ask(little), calls)))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    for name, first_big, big, first_small, little in run(args.entries, args.small, args.calls):
        print(f"{name:34} {args.entries}: first {first_big * 1e3:8.2f} ms, then "
              f"{big * 1e6:9.1f} µs | {args.small}: first {first_small * 1e3:6.2f} ms, then "
              f"{little * 1e6:6.1f} µs | ratio {big / little:7.1f}")


if __name__ == "__main__":
    main()
