"""Score every spam/ham corpus message with the heuristic engine of a checkout, and compare
two such runs: how many scores a change to the decomposer or the definitions moves, and
whether any crosses a sensitivity's score (50, 60, 70, 80, 90).

    python tools/score_corpus.py score CHECKOUT OUT.json   # e.g. a `git archive` of HEAD
    python tools/score_corpus.py compare OLD.json NEW.json

Scores are taken offline (decomposer + engine, shipped definitions), with the corpus
messages as they are (no gateway envelope); it reads both parts of the corpus, so it is a
check that a change leaves decisions alone, not a measurement to choose anything by.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "spamham"
THRESHOLDS = (50, 60, 70, 80, 90)


def score(checkout: str, out: str) -> None:
    sys.path.insert(0, checkout)
    from core.pipeline.decompose import decompose_bytes
    from core.scan.antispam.engine import HeuristicEngine
    from shared.settings import defaults
    engine, settings = HeuristicEngine(), dict(defaults())
    context = {"sender": "a@b.test", "recipients": ["u@local.test"], "meta": {}}
    scores = {str(path.relative_to(CORPUS)): engine.score(
        decompose_bytes(path.read_bytes(), context, settings)).score
        for path in sorted(CORPUS.rglob("*.eml"))}
    Path(out).write_text(json.dumps(scores, indent=0, sort_keys=True))
    print(f"{len(scores)} messages scored with {checkout}")


def compare(old_path: str, new_path: str) -> None:
    old, new = json.loads(Path(old_path).read_text()), json.loads(Path(new_path).read_text())
    moved = sorted((name, old[name], new[name]) for name in old if old[name] != new.get(name))
    crossing = [(n, a, b) for n, a, b in moved
                if any((a >= t) != (b >= t) for t in THRESHOLDS)]
    print(f"{len(old)} messages, {len(moved)} scores moved, {len(crossing)} across a "
          f"sensitivity's score")
    for name, a, b in moved:
        print(f"  {name}: {a} -> {b}{'  (crosses)' if (name, a, b) in crossing else ''}")


if __name__ == "__main__":
    command, first, second = sys.argv[1:4]
    {"score": score, "compare": compare}[command](first, second)
