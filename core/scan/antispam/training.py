"""Training and evaluation helpers: the labelled corpus, the fixed train/test split, views.

What it owns
    `corpus_messages(root)` lists the shared corpus' spam/ham messages (MANIFEST labels
    "spam" and "ham" under spamham/, the SpamAssassin public corpus); `split_of(raw)` says
    whether a message is in the training part or the held-out test part; `view_of(raw)`
    decomposes a message exactly as the pipeline does (the model learns what the engine sees).
    `gateway_message(raw)` takes off what the corpus' collectors added after their mail
    gateway (delivery headers, mail-client flags, their internal Received hops) and returns
    the message with the envelope a gateway would have had (bench/antispam_gateway.py
    measures how much the engine leans on those collection traces).

The split (fixed; docs/antispam.md states it)
    key  = SHA-256 of the message body (after the first blank line; lower-cased, whitespace
           collapsed; the whole file when the body is shorter than 40 bytes) — the corpus
           README's body key, so identical bodies (near-copies re-sent with other headers)
           always fall on the same side;
    u    = int(sha256("mailmoat-antispam-split-v1|" + key)[:12], 16) / 2**48;
    test when u < TEST_FRACTION (0.30), training otherwise.
Changing SPLIT_SALT or TEST_FRACTION changes every published figure: don't.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from core.scan.antispam.delist import header_fields

__all__ = ["Sample", "corpus_messages", "body_key", "split_of", "view_of", "gateway_message",
           "SPLIT_SALT", "TEST_FRACTION", "DEFAULT_CORPUS"]

SPLIT_SALT = "mailmoat-antispam-split-v1"
TEST_FRACTION = 0.30
# The shared corpus beside the checkout (../shared/corpus), as in development and CI.
DEFAULT_CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"
_SPACES = re.compile(rb"\s+")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str          # "spam" | "ham"
    group: str          # corpus folder: easy_ham, easy_ham_2, hard_ham, spam, spam_2
    split: str          # "train" | "test"


def body_key(raw: bytes) -> str:
    head, sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    text = body if sep and len(body) >= 40 else raw
    return hashlib.sha256(_SPACES.sub(b" ", text.lower()).strip()).hexdigest()


def split_of(raw: bytes) -> str:
    digest = hashlib.sha256(f"{SPLIT_SALT}|{body_key(raw)}".encode()).hexdigest()
    return "test" if int(digest[:12], 16) / 2 ** 48 < TEST_FRACTION else "train"


def corpus_messages(root: Path = DEFAULT_CORPUS) -> list[Sample]:
    """Every spam/ham message of the corpus MANIFEST, sorted by path, with its split."""
    out = []
    for line in (root / "MANIFEST").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        path, _sha, label = line.split("\t")
        if label not in ("spam", "ham") or not path.startswith("spamham/"):
            continue
        full = root / path
        out.append(Sample(full, label, path.split("/")[2], split_of(full.read_bytes())))
    return sorted(out, key=lambda s: str(s.path))


def view_of(raw: bytes, settings=None, envelope: dict | None = None):
    """The pipeline's MessageView of `raw` (default settings and no envelope unless given;
    `envelope` is the pipeline's context: sender, recipients, ...)."""
    from core.pipeline.decompose import decompose_bytes
    return decompose_bytes(raw, envelope or {},
                           settings if settings is not None else _defaults())


# What the corpus' collectors (2002) added after the message reached their mail gateway: the
# final delivery's headers, mail-client flags, an earlier filter's verdict, and Received hops
# by their internal hosts (local Postfix, fetchmail over IMAP). A gateway in front of their
# server would have seen none of it; it would have had the envelope sender (Return-Path) and
# recipient (the gateway hop's "for <...>", else Delivered-To) instead.
_AFTER_GATEWAY = frozenset((b"return-path", b"delivered-to", b"delivery-date", b"x-keywords",
                            b"x-uid", b"status", b"x-status", b"x-spam-status",
                            b"x-spam-checker-version", b"x-spam-level", b"x-spam-flag"))
_INTERNAL_HOP = re.compile(
    rb"(?is)\bby\s+(?:localhost|jalapeno|phobos\.labs\.\S+|spamassassin\.taint\.org"
    rb"|[\w.-]*netnoteinc\.com|lerami\.lerctr\.org)\b"
    rb"|^received:\s*from\s+\S+\s*\([^)]*\[127\.0\.0\.1\]|fetchmail|\bwith\s+imap\b")
_FOR_ADDRESS = re.compile(rb"(?is)\bfor\s+<([^<>\s]+@[^<>\s]+)>")
_PATH_ADDRESS = re.compile(rb"<?([^<>\s]+@[^<>\s]+?)>?\s*$")


def gateway_message(raw: bytes) -> tuple[bytes, dict]:
    """(message, envelope context) as a gateway in front of the collector's server would
    have received it (the comment above); the context is what decompose_bytes takes."""
    head, sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    sender, recipients, kept, outside = "", [], [], False
    for field in header_fields(head):
        name, _, value = field.partition(b":")
        name = name.strip().lower()
        if name == b"return-path" and not sender:
            match = _PATH_ADDRESS.search(value.strip())
            sender = match.group(1).decode("latin-1") if match else ""
        if name == b"delivered-to" and not recipients:
            recipients = [value.strip().decode("latin-1")]
        if name in _AFTER_GATEWAY:
            continue
        if name == b"received" and not outside:
            if _INTERNAL_HOP.search(field):
                continue
            outside = True                  # the gateway's own hop: kept, as Mailmoat adds one
            match = _FOR_ADDRESS.search(field)
            if match:
                recipients = [match.group(1).decode("latin-1")]
        kept.append(field)
    return b"\n".join(kept) + sep + body, {"sender": sender, "recipients": recipients}


_DEFAULTS = None


def _defaults():
    global _DEFAULTS
    if _DEFAULTS is None:
        from shared.settings import defaults
        _DEFAULTS = defaults()
    return _DEFAULTS
