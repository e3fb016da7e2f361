"""Header and body rules of the heuristic engine (SPEC §3 heuristic.*; guide §5 "the heuristic
antispam engine performs an analysis of the entire incoming email message").

What it owns
    `RuleSet` — compiled rules from the spam definitions' `rules.json`; `hits(view)` returns
    the names of the rules a message triggers. Rules do not score by themselves: each hit is a
    feature ("r:<name>") whose weight the training learns beside the token weights, so a rule
    that does not separate spam from ham in the corpus ends up weighing nothing.

A rule is `{"name", "target", "pattern", "description", "flags"?: "i", "force_score"?: 100}`:
    target  "subject" | "header:<Name>" (each value of that header) | "headers" (every
            "Name: value" line) | "body" (decoded text of the text parts) | "html" (markup of
            the HTML parts) | "uri" (each URL found) | "test:<name>" (a computed test of
            TESTS below; `pattern` unused)
    force_score  a hit sets the score to this value whatever the rest says (GTUBE: 100).

Rules
    1. Patterns are Python regular expressions, searched (not matched) with a bounded text
       (MAX_TEXT_CHARS); a definitions update can add or change rules without code, a new
       computed test needs code here. Case-insensitive rules (flag "i", the default) are
       searched in the lower-cased text — five times faster than re.IGNORECASE — so their
       patterns must be written in lower case (an upper-case letter outside an escape sequence
       is refused at load time).
    2. Pure, no I/O; never raises for anything in the message (a bad pattern is refused when
       the rules are loaded, not at scan time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.scan.antispam.tokenizer import urls

__all__ = ["Rule", "RuleSet", "TESTS", "RuleSetError"]

MAX_TEXT_CHARS = 100_000


class RuleSetError(ValueError):
    """rules.json is not a valid rule list."""


def _html(view) -> str:
    return "\n".join(p.data[:MAX_TEXT_CHARS].decode("utf-8", "replace") for p in view.parts
                     if p.text is not None and p.content_type == "text/html")


def _test_html_only(view, facts) -> bool:
    kinds = {p.content_type for p in view.parts if p.is_body_text}
    return "text/html" in kinds and "text/plain" not in kinds


def _test_html_little_text(view, facts) -> bool:
    html = facts["html"]
    if len(html) < 400:
        return False
    text = sum(len(p.text or "") for p in view.parts if p.content_type == "text/html")
    return text / len(html) < 0.15


def _test_many_images_little_text(view, facts) -> bool:
    html = facts["html"]
    return html.lower().count("<img") >= 2 and len(facts["body"].split()) < 80


def _test_reply_to_differs(view, facts) -> bool:
    reply, sender = view.header("reply-to"), view.header("from")
    if not reply or not sender:
        return False
    domain = lambda v: v.rpartition("@")[2].strip(" >\"").lower()
    return domain(reply) != domain(sender)


def _test_subject_caps(view, facts) -> bool:
    letters = [c for c in view.subject if c.isalpha()]
    return len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.7


_UPPER = re.compile(r"[A-Z]")
_LOWER = re.compile(r"[a-z]")


def _test_body_caps(view, facts) -> bool:
    text = facts["body"][:20_000]
    upper, lower = len(_UPPER.findall(text)), len(_LOWER.findall(text))
    return upper + lower >= 200 and upper / (upper + lower) > 0.5


def _test_no_text(view, facts) -> bool:
    return not facts["body"].strip()


def _test_to_undisclosed(view, facts) -> bool:
    to = view.header("to")
    return to is None or not to.strip() or "undisclosed" in to.lower()


def _test_to_many(view, facts) -> bool:
    return sum(v.count("@") for v in view.header_all("to") + view.header_all("cc")) >= 10


def _test_from_digits(view, facts) -> bool:
    sender = (view.header("from") or "").rpartition("@")[0].rpartition("<")[2]
    return bool(re.search(r"\d{3,}", sender))


def _test_uri_ip(view, facts) -> bool:
    return any(re.match(r"(?i)^(?:https?://)?\d{1,3}(?:\.\d{1,3}){3}", u) for u in facts["uris"])


def _test_uri_many_domains(view, facts) -> bool:
    return len(facts["uris"]) >= 15


TESTS = {
    "html_only": _test_html_only,
    "html_little_text": _test_html_little_text,
    "many_images_little_text": _test_many_images_little_text,
    "reply_to_differs": _test_reply_to_differs,
    "subject_caps": _test_subject_caps,
    "body_caps": _test_body_caps,
    "no_text": _test_no_text,
    "to_undisclosed": _test_to_undisclosed,
    "to_many": _test_to_many,
    "from_digits": _test_from_digits,
    "uri_ip": _test_uri_ip,
    "uri_many": _test_uri_many_domains,
}
TARGETS = ("subject", "headers", "body", "html", "uri")


@dataclass(frozen=True)
class Rule:
    name: str
    target: str
    pattern: re.Pattern | None
    description: str
    force_score: int | None = None
    lower: bool = True              # searched in the lower-cased text (flag "i")


class RuleSet:
    def __init__(self, rules: list[Rule]):
        self.rules = rules

    @classmethod
    def from_json(cls, data) -> RuleSet:
        """Raises RuleSetError for an unknown target or test, or a bad pattern."""
        if not isinstance(data, list):
            raise RuleSetError("rules.json must hold a list of rules")
        rules, names = [], set()
        for item in data:
            name, target = item.get("name"), item.get("target", "")
            if not name or name in names:
                raise RuleSetError(f"rule without a name or a duplicate name: {name!r}")
            names.add(name)
            pattern = None
            if target.startswith("test:"):
                if target[5:] not in TESTS:
                    raise RuleSetError(f"rule {name}: unknown test {target[5:]!r}")
            elif target in TARGETS or target.startswith("header:"):
                flags = item.get("flags", "i")
                lower = "i" in flags
                try:
                    text = item["pattern"]
                    if lower and re.search(r"[A-Z]", re.sub(r"\\.", "", text)):
                        raise RuleSetError(f"rule {name}: a case-insensitive pattern must be "
                                           f"written in lower case")
                    pattern = re.compile(text, (re.MULTILINE if "m" in flags else 0))
                except (KeyError, re.error) as exc:
                    raise RuleSetError(f"rule {name}: bad pattern: {exc}") from None
            else:
                raise RuleSetError(f"rule {name}: unknown target {target!r}")
            force = item.get("force_score")
            rules.append(Rule(name, target, pattern, item.get("description", ""),
                              int(force) if force is not None else None,
                              lower=pattern is None or "i" in item.get("flags", "i")))
        return cls(rules)

    def hits(self, view) -> list[Rule]:
        body = view.body_text()[:MAX_TEXT_CHARS]
        facts: dict = {"body": body}
        facts["html"] = _html(view)
        facts["uris"] = urls(body + "\n" + facts["html"])[:200]
        texts: dict = {}                 # (target, lower) -> text, computed once

        def text(target: str, lower: bool):
            key = (target, lower)
            if key not in texts:
                if target == "subject":
                    value = view.subject[:2000]
                elif target == "body":
                    value = body
                elif target == "html":
                    value = facts["html"]
                elif target == "headers":
                    value = "\n".join(f"{k}: {v}" for k, v in view.headers[:300])[:MAX_TEXT_CHARS]
                elif target == "uri":
                    value = "\n".join(facts["uris"])
                else:
                    value = "\n".join(v[:2000] for v in view.header_all(target[7:]))
                texts[key] = value.lower() if lower else value
            return texts[key]

        out = []
        for rule in self.rules:
            target = rule.target
            if target.startswith("test:"):
                hit = TESTS[target[5:]](view, facts)
            elif target == "uri":
                hit = any(rule.pattern.search(u.lower() if rule.lower else u)
                          for u in facts["uris"])
            else:
                hit = rule.pattern.search(text(target, rule.lower)) is not None
            if hit:
                out.append(rule)
        return out
