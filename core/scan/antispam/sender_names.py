"""The sender names itself: tokens saying whether the From address's registered domain is
named by the From display name and by the Subject (the twenty-fourth session's V2,
docs/antispam-model.md, "Recall elsewhere") — an organisation writing as itself ("Geocaching
Notify Bot" <notify@geocaching.com>, Subject "Geocaching.com Weekly Cache Notification")
against a sender whose name and subject have nothing to do with the domain it sends from.

What it owns
    `sender_tokens(view)`: "x:from:names_sender" and "x:subj:names_sender". engine.features
    adds them when the definitions say so ("scoring": {"sender_names": true}, definitions.py);
    a set without it has neither token.

Rules
    1. Read from the From field (its first 500 characters, the last address in it) and the
       Subject (its first 300) of the view features() reads (the as_learned one); what a
       gateway has for every message.
    2. The label is the first label of the From address's registered domain, "-" removed,
       lower case; one shorter than 3 characters gives no token.
    3. Only ASCII letters and digits are compared (runs of them, "words"): a display name or
       Subject without them, or with an undecoded RFC 2047 word ("=?"), gives no token, so
       no language or script has a token of its own. A display name needs a word of 3+
       characters.
    4. Words name the label when it is inside their concatenation, or when one word of 4+
       characters covering at least half the label is inside it.
"""

from __future__ import annotations

import re

from core.scan.antispam.tokenizer import registered_domain

__all__ = ["sender_tokens", "FROM_TOKEN", "SUBJECT_TOKEN"]

FROM_TOKEN = "x:from:names_sender"
SUBJECT_TOKEN = "x:subj:names_sender"
_ADDR = re.compile(r"([\w.+=#%-]+)@([\w-]+(?:\.[\w-]+)+)")
_ALNUM = re.compile(r"[a-z0-9]+")


def _names(label: str, words: list[str]) -> bool:
    """Rule 4."""
    joined = "".join(words)
    return label in joined or any(len(w) >= 4 and 2 * len(w) >= len(label) and w in label
                                  for w in words)


def sender_tokens(view) -> set[str]:
    out: set[str] = set()
    value = (view.header("from") or "")[:500]
    found = _ADDR.findall(value)
    if not found:
        return out
    _local, host = found[-1]
    label = registered_domain(host).split(".")[0].replace("-", "").lower()
    if len(label) < 3:
        return out
    if "<" in value:
        name = value.partition("<")[0].strip().strip('"').strip()
        if "=?" not in name:
            words = _ALNUM.findall(name.lower())
            if any(len(w) >= 3 for w in words) and _names(label, words):
                out.add(FROM_TOKEN)
    subject = (view.subject or "")[:300].lower()
    if "=?" not in subject:
        words = _ALNUM.findall(subject)
        if words and _names(label, words):
            out.add(SUBJECT_TOKEN)
    return out
