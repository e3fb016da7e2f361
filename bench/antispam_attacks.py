"""Attacks on reading relayed mail de-listed, measured on the training part of the corpus
(docs/antispam-model.md, "The guarded de-listed reading"; the held-out part is not read):

- the footer trick (review22a R1): a `List-Id: <deals.example.com>` field, and the line
  "Questions? deals@example.com" where the body's last FOOTER_OCTETS begin;
- a forged list hop: a `List-Id: <news.lists.example.org>` field and a hop "by
  lists.example.org … for <news@lists.example.org>" below the real Received fields;
- one list field alone (review23a R3): `List-Id`, `X-BeenThere` or `Sender: owner-…`, which
  make a message "relayed" and so take the list's fields off;
each applied to the training spam no list relayed.

For each set of definitions (the reference, by default the packaged one, and a candidate),
of the spam it catches at score 90 as they are, how many it still catches with the attack.

    .venv/bin/python -m bench.antispam_attacks --candidate DIR [--reference DIR] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.scan.antispam import definitions as defs                  # noqa: E402
from core.scan.antispam.delist import FOOTER_OCTETS, list_received  # noqa: E402
from core.scan.antispam.engine import HeuristicEngine, threshold_for   # noqa: E402
from core.scan.antispam.training import DEFAULT_CORPUS, corpus_messages, view_of   # noqa: E402

FORGED_HOP = (b"Received: from relay.example.org (relay.example.org [192.0.2.7]) by\n"
              b"    lists.example.org (Postfix) with ESMTP id 4F2A1B3C for\n"
              b"    <news@lists.example.org>; Mon, 5 Aug 2002 10:00:00 +0100")


def _head_lines(raw: bytes) -> tuple[list[bytes], bytes, bytes]:
    head, sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    return head.split(b"\n"), sep, body


def _with_field(field: bytes):
    def attack(raw: bytes) -> bytes:
        lines, sep, body = _head_lines(raw)
        lines.insert(1 if lines[0].startswith(b"From ") else 0, field)
        return b"\n".join(lines) + sep + body
    return attack


def footer_trick(raw: bytes) -> bytes:
    lines, sep, body = _head_lines(_with_field(b"List-Id: <deals.example.com>")(raw))
    at = max(0, len(body) + 40 - FOOTER_OCTETS)
    at = body.find(b"\n", at - 1) + 1 if at else 0
    return (b"\n".join(lines) + sep + body[:at] + b"Questions? deals@example.com\n"
            + body[at:])


def forged_hop(raw: bytes) -> bytes:
    lines, sep, body = _head_lines(raw)
    last = max((i for i, line in enumerate(lines) if line.lower().startswith(b"received:")),
               default=0)
    below = last + 1
    while below < len(lines) and lines[below][:1] in (b" ", b"\t"):
        below += 1
    lines[below:below] = [FORGED_HOP, b"List-Id: <news.lists.example.org>"]
    return b"\n".join(lines) + sep + body


ATTACKS = {"footer trick": footer_trick,
           "forged list hop": forged_hop,
           "List-Id alone": _with_field(b"List-Id: <news.lists.example.org>"),
           "X-BeenThere alone": _with_field(b"X-BeenThere: news@lists.example.org"),
           "Sender: owner- alone": _with_field(b"Sender: owner-news@lists.example.org")}


def measure(engine: HeuristicEngine, spam: list[bytes], threshold: int) -> dict[str, tuple]:
    """{attack: (spam no list relayed caught as they are, of those still caught attacked)}."""
    caught = [raw for raw in spam if list_received(raw) is None
              and engine.score(view_of(raw)).score >= threshold]
    return {name: (len(caught), sum(engine.score(view_of(attack(raw))).score >= threshold
                                    for raw in caught))
            for name, attack in ATTACKS.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidate", type=Path, required=True)
    parser.add_argument("--reference", type=Path, default=defs.PACKAGED_DIR)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--sensitivity", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.monotonic()
    spam = [s.path.read_bytes() for s in corpus_messages(args.corpus)
            if s.split == "train" and s.label == "spam"]
    threshold = threshold_for(args.sensitivity)
    results = {}
    for directory in (args.reference, args.candidate):
        definitions = defs.load(directory)
        results[definitions.label] = measure(HeuristicEngine(definitions), spam, threshold)
    print(f"{len(spam)} training spam; of those no list relayed, caught at score {threshold} "
          f"as they are, and of those still caught with the attack")
    print("| attack | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for name in ATTACKS:
        print(f"| {name} | " + " | ".join(f"{kept} of {caught}" for caught, kept in
                                          (r[name] for r in results.values())) + " |")
    print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
