"""Decomposition cost of deep multipart nesting, beside a flat message of the same size.

Hostile-mime finding 5: every multipart level scanned the whole rest of the message for its
delimiters, so a 20,000-level nest (only the first MAX_MIME_NESTING levels are followed)
cost about 100 times its size. This builds, in one process, a flat message (a short text
part and one base64 attachment) and a nest (each part a multipart/mixed holding the next, as
the finding's make_deep.py does) of about the same size, decomposes each with the default
settings (best of --repeat) and prints both times and the ratio nested / flat (the goal:
about 2 or less; before the fix, about 65).

    python -m bench.mime_nesting [--mb 8.5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from core.pipeline.decompose import decompose_bytes  # noqa: E402
from shared.settings import defaults  # noqa: E402
from tests.support.mail import deep_nest  # noqa: E402

TOP = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
CONTEXT = {"queue_id": "BENCH", "sender": "a@example.org", "recipients": ["b@example.net"]}


def nested(octets: int) -> bytes:
    """make_deep.py's shape, with as many levels as fit in about `octets`."""
    levels = 1
    while len(_nest(levels * 2)) < octets:
        levels *= 2
    low, high = levels, levels * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if len(_nest(mid)) <= octets else (low, mid)
    return _nest(low)


def _nest(levels: int) -> bytes:
    return deep_nest(levels, TOP % b"deep")


def flat(octets: int) -> bytes:
    head = (TOP % b"flat" + b"Content-Type: multipart/mixed; boundary=\"=_flat\"\r\n\r\n"
            b"--=_flat\r\nContent-Type: text/plain\r\n\r\nThe report is attached.\r\n"
            b"--=_flat\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\n"
            b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n")
    tail = b"\r\n--=_flat--\r\n"
    room = (octets - len(head) - len(tail)) * 76 // 78 * 3 // 4
    encoded = base64.encodebytes(random.Random(5).randbytes(room)).replace(b"\n", b"\r\n")
    return head + encoded.rstrip(b"\r\n") + tail


def best_seconds(raw: bytes, repeat: int):
    settings = defaults()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        view = decompose_bytes(raw, CONTEXT, settings)
        times.append(time.perf_counter() - started)
    return min(times), view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=8.5, help="message size, MB (10^6)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    octets = int(args.mb * 1_000_000)
    shapes = {"flat": flat(octets), "nested": nested(octets)}
    seconds = {}
    for name, raw in shapes.items():
        seconds[name], view = best_seconds(raw, args.repeat)
        errors = "; ".join(error.reason[:50] for error in view.errors)
        print(f"{name:7s} {len(raw):>10,d} octets  {len(view.parts):4d} parts  "
              f"{seconds[name]:7.3f} s  {errors}")
    print(f"nested / flat: {seconds['nested'] / seconds['flat']:.2f}")


if __name__ == "__main__":
    main()
