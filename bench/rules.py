"""Content/spam rule terms: time per MB of text for 1 term and for the maximal rule set
(SPEC §3: 100 rules of 50 terms), same text, same run (tester policy A3: 5000 plain terms
held a worker past its 60 s limit on a 3 MB attachment, the cost was terms × text).

    .venv/bin/python -m bench.rules [--mb 1] [--repeat 3] [--checkout DIR]

Each rule set runs core.pipeline.rules.matching_rules over the same text — an order export
(CSV lines) and prose, as a large text attachment reads — with body scanning on; none of
the terms occurs, so every rule is decided over the whole text. Sets: 1 plain term; 5000
plain words; 5000 wildcard terms (`*` and `?`). The first call of each set builds what it
keeps for later messages and is shown apart ("first"); then the best of --repeat. The
ratio 5000 / 1 is the number to watch: about 1 means the cost does not grow with the
terms. --checkout runs another tree's engine (e.g. `git archive HEAD core shared | tar -x
-C DIR` for the code before a change).

Then one adversarial line (antispam adversary A2): the term `s?x`, whose anchor is one
letter, over lines of "s" as long as the order export — every character is a place to check
it. Read its ms/MB against the "1 term" line: before the checks of a `?` piece were bounded
(shared/term_set.py CHARS_PER_CHECK) it cost about 550 ms/MB.

Then the "1 term" and "5000 plain" sets over Japanese prose with the order lines: a text
with letters of a script written without spaces is read with stand-ins for them (terms are
words there too: shared/wildcard.py `read`), which the ASCII text above never needs.

Last, the same two sets over French, Greek and Russian prose with the order lines: letters
with accents are read without them (shared/wildcard.py `without_marks`, tester i18n19 B1),
which neither the ASCII nor the Japanese text needs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CSV_LINE = "2026-11-28,order,12345,customer name here,shipped,EUR,199.00,comment text\n"
PROSE = "Lorem ipsum dolor sit amet, consectetur adipiscing elit; the quarterly report.\n"
JAPANESE = "本日の会議は午後三時から第二会議室で行います。資料は添付のとおりです。\n"
ACCENTED = ("La réunion est déplacée à jeudi; préparez les chiffres du trimestre, s'il vous "
            "plaît.\nΗ συνάντηση μεταφέρθηκε την Πέμπτη· ετοιμάστε τα τριμηνιαία στοιχεία.\n"
            "Встреча перенесена на четверг, пожалуйста, подготовьте квартальные отчёты.\n")


def rule_sets() -> dict[str, list[dict]]:
    def rule(terms):
        return {"enabled": True, "match": "any", "terms": terms, "none_of": []}
    return {
        "1 term": [rule(["zqword0x0"])],
        "5000 plain": [rule([f"zqword{i}x{j}" for j in range(50)]) for i in range(100)],
        "5000 wildcard": [rule([f"zq*word{i}?x{j}*end" for j in range(50)])
                          for i in range(100)],
    }


def text_of(mb: float, prose: str = PROSE) -> str:
    block = CSV_LINE * 40 + prose * 10
    return block * max(1, int(mb * 2 ** 20 / len(block.encode())))


def flood_of(mb: float) -> str:
    """Lines of "s" (998 characters, the longest SMTP allows), `mb` MB of them."""
    line = "s" * 998 + "\n"
    return line * max(1, int(mb * 2 ** 20 / len(line)))


def best_of(matching_rules, rules, text, repeat: int) -> tuple[float, float]:
    """(first call, best of `repeat` more), in seconds; no rule matches `text`."""
    started = time.perf_counter()
    assert not matching_rules("rules.content", rules, "Orders", text, True)
    first = best = time.perf_counter() - started
    for _ in range(repeat):
        started = time.perf_counter()
        matching_rules("rules.content", rules, "Orders", text, True)
        best = min(best, time.perf_counter() - started)
    return first, best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkout", default=str(REPO))
    args = parser.parse_args()
    sys.path.insert(0, args.checkout)
    from core.pipeline import rules as engine
    matching_rules = engine.matching_rules

    text = text_of(args.mb)
    mb = len(text.encode()) / 2 ** 20
    print(f"engine: {engine.__file__}; text {mb:.2f} MB")
    per_mb = {}
    for name, rules in rule_sets().items():
        first, best = best_of(matching_rules, rules, text, args.repeat)
        per_mb[name] = best / mb
        print(f"{name:>14}: {best / mb * 1000:9.1f} ms/MB   (first {first / mb * 1000:.1f})",
              flush=True)
    for name in ("5000 plain", "5000 wildcard"):
        print(f"ratio {name} / 1 term: {per_mb[name] / per_mb['1 term']:.2f}")
    flood = flood_of(args.mb)
    flood_mb = len(flood.encode()) / 2 ** 20
    question = [{"enabled": True, "match": "any", "terms": ["s?x"], "none_of": []}]
    first, best = best_of(matching_rules, question, flood, args.repeat)
    print(f"'s?x' on {flood_mb:.2f} MB of 's': {best / flood_mb * 1000:9.1f} ms/MB   "
          f"(first {first / flood_mb * 1000:.1f})")
    japanese = text_of(args.mb, JAPANESE)
    japanese_mb = len(japanese.encode()) / 2 ** 20
    for name in ("1 term", "5000 plain"):
        first, best = best_of(matching_rules, rule_sets()[name], japanese, args.repeat)
        print(f"{name:>10}, Japanese: {best / japanese_mb * 1000:9.1f} ms/MB   "
              f"(first {first / japanese_mb * 1000:.1f})", flush=True)
    accented = text_of(args.mb, ACCENTED)
    accented_mb = len(accented.encode()) / 2 ** 20
    for name in ("1 term", "5000 plain"):
        first, best = best_of(matching_rules, rule_sets()[name], accented, args.repeat)
        print(f"{name:>10}, accented: {best / accented_mb * 1000:9.1f} ms/MB   "
              f"(first {first / accented_mb * 1000:.1f})", flush=True)


if __name__ == "__main__":
    main()
