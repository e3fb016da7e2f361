"""The content/spam rule engine (SPEC §3 rules.spam, rules.content; guide §6 "Blocking by
custom content rules"). Content rules use it here; antispam's spam rules (issue 7) use the
same `matching_rules`.

A rule is `{"enabled", "match": "all"|"any", "terms": [...], "none_of": [...], "name"?}`.
Each term is a word or phrase found, case-insensitive, in the Subject or in the decoded text
of the text parts (HTML reduced to its text, and also read without what inline CSS hides) —
in the Subject only when `rules.body_scanning` is off. A term matches whole words (the ends
of a term are word ends, except next to scripts written without spaces, and at an end
written `*`); `*` matches 0 or more characters and `?` exactly one, within a word, never
white space; `\\` escapes them and nothing else (shared.wildcard.find). "all" = every term (AND), "any" = at
least one (OR); `none_of` terms must all be absent (NOT, which implies AND NOT). A rule
without terms never matches. Any run of white space in the text (spaces, tabs, line breaks, no-break
spaces) reads as one space, and so do the spaces of a term: a client wraps lines wherever
the words fall, and a phrase must match across the wrap. Text and terms are read as a
mail reader shows them: characters that draw nothing (zero-width spaces and joiners, soft
hyphens, direction marks, BOMs) are dropped — spam and leaks put them inside a word to get
past a term — compatibility forms read as their letters (NFKC: full-width "ｆｒｅｅ" is
"free", the ligature "ﬁ" is "fi"), and letters without their accents, Hebrew points and
Arabic vowel signs (shared.wildcard.without_marks: `ΠΡΟΣΦΟΡΑ` is "Προσφορά" in capitals, as
Greek writes them, and `סודי` is "סוֹדִי"; tester i18n19 B1, B2). Pure functions: no settings
object, no I/O.

All the terms of a rule list are looked for together, in one reading of each text
(shared/term_set.py TermSet), and the rules are then decided from the set of terms found: up
to 100 rules of 50 terms each must not make a large message cost 5000 readings of it.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.pipeline.decompose.text import as_read
from shared.term_set import TermSet
from shared.wildcard import without_marks

__all__ = ["RuleMatch", "rule_matches", "matching_rules", "rule_label", "as_compared"]


@dataclass(frozen=True)
class RuleMatch:
    index: int
    label: str                 # "rules.content[2]" or "rules.content[2] <name>"
    terms: tuple[str, ...]     # the terms that were found


def rule_label(key: str, index: int, rule: Mapping) -> str:
    name = rule.get("name")
    return f"{key}[{index}] {name}" if name else f"{key}[{index}]"


def as_compared(text: str) -> str:
    """`text` as a reader sees it: NFKC, without marks (`without_marks`), invisible
    characters dropped (the decomposer drops them from a part's text; a term and the
    Subject need it here), every run of white space one space (module docstring)."""
    return " ".join(as_read(without_marks(unicodedata.normalize("NFKC", text))).split())


@functools.lru_cache(maxsize=16)
def _term_set(terms: tuple[str, ...]) -> tuple[dict[str, str], TermSet]:
    """(each term -> the term as compared, the TermSet of those not empty). Kept per term
    list: a settings snapshot serves many messages."""
    compared = {term: as_compared(term) for term in terms}
    return compared, TermSet(c for c in compared.values() if c)


def _present(rules: Sequence[Mapping], texts: Sequence[str]) -> set[str]:
    """The terms and none_of terms of the enabled `rules` that are found in any of `texts`."""
    terms = tuple(dict.fromkeys(
        term for rule in rules if rule.get("enabled", True)
        for term in (*(rule.get("terms") or ()), *(rule.get("none_of") or ()))))
    compared, term_set = _term_set(terms)
    found = set().union(*(term_set.found(text) for text in texts))
    return {term for term in terms if compared[term] in found}


def _decided(rule: Mapping, present: set[str]) -> tuple[str, ...] | None:
    if not rule.get("enabled", True):
        return None
    terms = [t for t in rule.get("terms") or () if t.strip()]
    if not terms:
        return None
    found = tuple(t for t in terms if t in present)
    if rule.get("match", "any") == "all":
        if len(found) != len(terms):
            return None
    elif not found:
        return None
    if any(t in present for t in rule.get("none_of") or ()):
        return None
    return found


def rule_matches(rule: Mapping, texts: Sequence[str]) -> tuple[str, ...] | None:
    """The terms that made `rule` match `texts` (as given), or None when it does not match."""
    return _decided(rule, _present([rule], texts))


def matching_rules(key: str, rules: Sequence[Mapping], subject: str, body_text: str,
                   body_scanning: bool) -> list[RuleMatch]:
    """Every rule of `rules` (the setting `key`) that matches, in list order."""
    texts = [as_compared(subject)] + ([as_compared(body_text)] if body_scanning else [])
    present = _present(rules, texts)
    out = []
    for index, rule in enumerate(rules):
        found = _decided(rule, present)
        if found is not None:
            out.append(RuleMatch(index, rule_label(key, index, rule), found))
    return out
