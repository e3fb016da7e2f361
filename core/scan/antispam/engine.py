"""The heuristic antispam engine: a message view -> a spam score 1..100 (SPEC §3 heuristic.*,
§5 step 5; guide §5 "Identifying spam messages using the heuristic antispam engine").

What it owns
    `HeuristicEngine(definitions).score(view, installed)` -> `SpamScore`. The engine reads
    the whole message — headers, Subject, decoded text, HTML markup, URLs, attachment types —
    as the token set of tokenizer.py, the structural tokens of structure.py (how the message
    was built and sent) and the rule hits of heuristic_rules.py, adds their trained weights
    (learner.py) into a raw score z — read in windows of the text when the definitions say
    so (windows.py: padding cannot pull a spam's own words down), and a message a mailing
    list relayed as the list received it when they say so (delist.py: the larger of that
    reading's z and the z of the message as it came), plus, when they hold the bounded
    character model, lambda times its evidence after the windowed reading (chars.py: z =
    max(sum, windowed - delta) + lambda · e) — and maps z onto 1..100:

        score = floor(50 + 40 · z / z90), kept within 1..100

    so that score 50 is "as likely spam as ham" (z = 0) and score 90 is the raw score the
    training calibrated as the point with no false positive on its held-out folds (z90).
    Sensitivity 1..5 compares the score with 90, 80, 70, 60, 50 (`is_spam`). A rule with
    `force_score` (GTUBE) sets the score outright.

Rules
    1. Pure: no I/O beyond what the definitions loader caches; the same view and
       definitions give the same score.
    2. Never raises for anything in the message.
    3. Why: `SpamScore.evidence()` names the MAX_EVIDENCE features present that weigh most
       towards spam, in an administrator's words (`describe`: 'word "1618"', "header
       content-type: multipart/mixed", "rule html_only"). A score may come from the token
       model alone, with no rule hit (hostile18 C1: 4,000 parts "part N" scored 100 with
       "rules": []); the event then still says why, and how many features weighed towards
       spam in all (there, thousands of small ones: the numbers of the parts). Worked out
       only when asked (the check asks for spam only), so scoring ham costs nothing more.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from core.scan.antispam.definitions import SpamDefinitions, current
from core.scan.antispam import delist
from core.scan.antispam.structure import structure_tokens
from core.scan.antispam.tokenizer import tokens, window_tokens
from core.scan.antispam.windows import windowed_raw
# SPEC §3 heuristic.sensitivity: 1..5 -> spam at score >= 90, 80, 70, 60, 50; the setting's
# table, re-exported here for the engine's readers
from shared.settings import SENSITIVITY_THRESHOLDS

__all__ = ["HeuristicEngine", "SpamScore", "SENSITIVITY_THRESHOLDS", "threshold_for",
           "score_from_raw", "raw_for_score", "features", "readings", "raw_of", "chars_term",
           "describe",
           "MAX_EVIDENCE"]

MAX_REASON_RULES = 8
MAX_EVIDENCE = 5

# Rule 3: what a feature's prefix says (tokenizer.py, structure.py); a feature without
# one is a word of the text.
FEATURE_KINDS = {"r": "rule", "s": "Subject word", "sC": "Subject capitals", "h": "header",
                 "H": "header word", "hn": "header field", "u": "link", "up": "link path",
                 "t": "HTML", "c": "sender", "n": "count", "x": "structure",
                 "ct": "part type", "cs": "charset", "cte": "transfer encoding",
                 "att": "attachment", "shape": "shape", "C": "capitals", "email": "address"}
_HEADER_KINDS = ("h", "H")


def threshold_for(sensitivity: int) -> int:
    return SENSITIVITY_THRESHOLDS[int(sensitivity)]


@dataclass(frozen=True)
class SpamScore:
    score: int                      # 1..100
    raw: float                      # z
    rules: tuple[str, ...]          # rule names that hit (strongest weight first)
    definitions: str                # definitions label ("2026-11-27 rev 1")
    forced_by: str | None = None    # the force_score rule, when one decided
    # rule 3: the features and their weights, for `evidence` (not compared, not shown)
    found: frozenset | set = field(default=frozenset(), compare=False, repr=False)
    weights: dict = field(default_factory=dict, compare=False, repr=False)

    def is_spam(self, sensitivity: int) -> bool:
        return self.score >= threshold_for(sensitivity)

    def evidence(self, count: int = MAX_EVIDENCE) -> tuple[tuple[str, ...], int]:
        """Rule 3: (the `count` features present that weigh most towards spam, strongest
        first, ties by name, described; how many present weigh towards spam at all). Many
        small weights can outweigh a few large ones, so the second says whether the first
        is most of the reason."""
        get = self.weights.get
        towards = [(w, f) for f in self.found if (w := get(f, 0.0)) > 0]
        strongest = heapq.nlargest(count, towards)
        return tuple(describe(f) for _w, f in strongest), len(towards)


def describe(feature: str) -> str:
    """A feature in an administrator's words (rule 3)."""
    kind, sep, rest = feature.partition(":")
    label = FEATURE_KINDS.get(kind) if sep else None
    if label is None:
        return f'word "{feature}"'
    if kind == "s" and rest.startswith("shape:"):
        return "Subject shape " + rest[len("shape:"):]
    if kind in _HEADER_KINDS:
        rest = rest.replace(":", ": ", 1)
    return f"{label} {rest}"


def score_from_raw(z: float, z90: float) -> int:
    if not math.isfinite(z):
        return 100 if z > 0 else 1
    return max(1, min(100, math.floor(50 + 40 * z / z90)))


def raw_for_score(score: int, z90: float) -> float:
    """The raw score at which `score_from_raw` reaches `score`."""
    return z90 * (score - 50) / 40


def features(view, definitions: SpamDefinitions,
             text_parts: list | None = None) -> tuple[set[str], list]:
    """The feature set of one reading of a message (`readings`: tokens, structural "x:"
    tokens and "r:<rule>") and the rules that hit. The training (tools/train_spam_model.py)
    extracts features with this function, so the model weighs exactly what the engine sees.
    Header fields are read in the legacy reading of their RFC 2047 words, the one the model
    learned on (`view.as_learned`; core/pipeline/decompose/fieldvalue.py rule 4).
    `text_parts`: tokenizer.tokens'."""
    view = view.as_learned()
    hits = definitions.rules.hits(view)
    found = tokens(view, text_parts)
    found.update(structure_tokens(view))
    found.update("r:" + rule.name for rule in hits)
    return found, hits


def readings(view, definitions: SpamDefinitions) -> tuple:
    """The views a message is scored on, the one the definitions' model learned on first:
    the view itself; or, when the set reads relayed mail de-listed, a message a mailing list
    relayed as the list received it, then as it came — its raw score is the larger of the
    two (delist.py rules 7 and 9)."""
    if (not definitions.delisted or view.size > delist.MAX_OCTETS
            or view.limit_hit is not None):
        return (view,)
    boundaries = {part.boundary for part in view.parts if part.boundary}
    raw = delist.list_received(view.raw, boundaries)
    return (view,) if raw is None else (view.reread(raw), view)


def raw_of(found, text_parts: list, definitions: SpamDefinitions, chars: float = 0.0) -> float:
    """z of a feature set and the text parts it was read from (`features`): the sum of the
    weights, or the windowed reading when the definitions say so (windows.py); plus
    `chars`, the character model's lambda · e (chars.py), added after the windowed reading
    (whose shortcut at score 100, windows.py rule 3, then starts lowered by the term: the
    score is the same as without the shortcut)."""
    if definitions.windows is None:
        weights = definitions.weights
        z = math.fsum([definitions.bias, *(weights.get(f, 0.0) for f in found)])
    else:
        windows = definitions.windows
        z = windowed_raw(found, window_tokens(text_parts, windows.words), definitions.weights,
                         definitions.bias, windows,
                         ceiling=raw_for_score(100, definitions.z90) - chars)
    return z + chars if chars else z


def chars_term(view, text_parts: list, definitions: SpamDefinitions) -> float:
    """lambda · e of one reading (chars.py), 0.0 without the character model. `view`: the
    reading features() read (it reads its as_learned view), `text_parts` its text parts."""
    chars = definitions.chars
    if chars is None:
        return 0.0
    return chars.lam * chars.evidence(view.as_learned(), text_parts)


def _scored(view, definitions: SpamDefinitions) -> tuple[float, set[str], list]:
    """(z, features, rule hits) of one reading."""
    text_parts: list = []
    found, hits = features(view, definitions, text_parts)
    return (raw_of(found, text_parts, definitions, chars_term(view, text_parts, definitions)),
            found, hits)


class HeuristicEngine:
    def __init__(self, definitions: SpamDefinitions | None = None):
        """`definitions`: a fixed set (tests, benchmarks); None: the set in force."""
        self._fixed = definitions

    def definitions(self, installed: str | None = None) -> SpamDefinitions:
        """The fixed set, else the one installed in `installed` (definitions.current)."""
        return self._fixed if self._fixed is not None else current(installed)

    def score(self, view, installed: str | None = None) -> SpamScore:
        """`installed`: the installed definitions directory the core names (RUNTIME_DIR);
        None or an invalid set: the packaged definitions."""
        definitions = self.definitions(installed)
        scored = [_scored(reading, definitions) for reading in readings(view, definitions)]
        # a rule that forces the score (GTUBE) decides in whichever reading it hits
        forcing = [(one, rule) for one in scored for rule in one[2]
                   if rule.force_score is not None]
        z, found, hits = forcing[0][0] if forcing else max(scored, key=lambda one: one[0])
        weights = definitions.weights
        ranked = sorted(hits, key=lambda r: -weights.get("r:" + r.name, 0.0))
        names = tuple(r.name for r in ranked)
        if forcing:
            forced = forcing[0][1]
            return SpamScore(forced.force_score, z, names, definitions.label, forced.name,
                             found, weights)
        return SpamScore(score_from_raw(z, definitions.z90), z, names, definitions.label,
                         None, found, weights)
