"""Padding chosen from the public weights, measured on the training part of the corpus
(docs/antispam-model.md, "Links as padding" and "URLs as padding"; the held-out part is not
read).

The model is open source, so anyone can read which tokens weigh most towards ham. Each
attack adds n of them (n = 5, 10, 20, 50, 100) to every training spam a set catches at score
90 as it is, and this counts how many still score 90:

- links_hidden: hidden `<a href=U>.</a>` links before `</body>` (URLs in markup: rule 5);
- images_hidden: hidden `<img src=U>` images;
- urls_front_html: hidden `<a href=U>U</a>` links right after `<body>`, the URL also as text;
- urls_spread_html: the URL as hidden text, n per 200 words of the HTML text (rule 6);
- urls_front_plain / urls_spread_plain: URLs written as text in a plain-text spam, in front
  of it or n per 200 words of it;
- words_spread_plain: the most ham-weighted words, n per 200 words (not bounded);
- headers: header fields holding the n most ham-weighted header tokens (not bounded);
- licence_front / licence_end: neutral text, n x 25 words of the GPL-3 (in no corpus
  message; session 21's padding, "Windowed scoring"), as a paragraph in front of or after
  the text of a single-part plain or HTML spam (front padding is what the character model
  reads first). Neutral to the character model's reading, not quite to the tokens': its
  first words hold <https://fsf.org/> and GNU GENERAL PUBLIC LICENSE, as in sessions 12
  and 21;
- stars_hidden: n x 30 hidden `&#9733;` (a star, not ASCII) right after `<body>` of a
  single-part HTML spam: characters the character model's gate counts (chars.py rule 4),
  so enough of them switch its term off (review27a R1).

U is http://HOST/W1/W2/W3.html with the hosts (`u:`) and path words (`up:`) that weigh most
towards ham. An attack applies only to the spam it can be written into (unencoded HTML with
a `<body>`, or a plain-text single part), as the table's second column says.

    .venv/bin/python -m bench.antispam_padding [--set DIR ...] [--attack NAME ...]

Each --set is a spam definitions directory (default: the packaged set); sets are compared
side by side, each attacked with its own weights.
"""

from __future__ import annotations

import argparse
import functools
import html
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.scan.antispam import definitions as defs                  # noqa: E402
from core.scan.antispam.engine import HeuristicEngine, threshold_for   # noqa: E402
from core.scan.antispam.training import DEFAULT_CORPUS, corpus_messages, view_of   # noqa: E402

COUNTS = (5, 10, 20, 50, 100)
LICENCE = Path("/usr/share/common-licenses/GPL-3")      # Debian's base-files
LICENCE_WORDS = 25                                       # words a count of 1 adds
STARS = 30                                               # stars a count of 1 adds
# header fields an attacker cannot usefully add (the MTA's, or read by no filter)
_NOT_ADDED = {"content-type", "content-transfer-encoding", "content-disposition",
              "mime-version", "from", "to", "cc", "bcc", "subject", "date", "received",
              "return-path", "message-id", "sender", "reply-to", "delivered-to", "status",
              "x-status", "x-keywords", "x-uid", "x-original-date", "x-mailman-version"}
_HEADER_WORD = re.compile(r"[A-Za-z][A-Za-z'$-]{1,19}|\$?\d[\d,.]*%?")
_WORD = re.compile(r"[a-z][a-z0-9.'-]{2,19}")
_BODY = re.compile(rb"(?i)<body[^>]*>")
_TAG = re.compile(rb"(<[^>]*>)")


class Padding:
    """The tokens towards ham a set's weights name, most first, and the attacks made of
    them."""

    def __init__(self, weights: dict[str, float]):
        towards_ham = [f for _, f in sorted((w, f) for f, w in weights.items() if w < 0)]
        self.hosts = [f[2:] for f in towards_ham if f.startswith("u:") and "." in f
                      and not f.startswith(("u:scheme", "u:mailto"))]
        self.path_words = [f[3:] for f in towards_ham if f.startswith("up:")]
        self.words = [f for f in towards_ham if ":" not in f and _WORD.fullmatch(f)]
        self.header_tokens = []
        for f in towards_ham:
            if f.startswith("hn:"):
                name, word = f[3:], None
            elif f.startswith("H:"):
                name, _, word = f[2:].partition(":")
                if not _HEADER_WORD.fullmatch(word):
                    continue
            else:
                continue
            if (name.startswith(("missing", "x-spam")) or ":" in name
                    or name in _NOT_ADDED):
                continue
            self.header_tokens.append((name, word))

    def url(self, i: int, ext: str = "html") -> str:
        words = "/".join(self.path_words[(3 * i + j) % len(self.path_words)] for j in range(3))
        return f"http://{self.hosts[i % len(self.hosts)]}/{words}.{ext}"

    def headers(self, n: int) -> bytes:
        fields: dict[str, list[str]] = {}
        for name, word in self.header_tokens[:n]:
            fields.setdefault(name, []).append(word or "x")
        lines = [f"{name}: " + " ".join(words[i:i + 20])
                 for name, words in fields.items() for i in range(0, len(words), 20)]
        return ("\n".join(lines) + "\n").encode()

    def attacks(self) -> dict:
        return {"links_hidden": self.links_hidden, "images_hidden": self.images_hidden,
                "urls_front_html": self.urls_front_html,
                "urls_spread_html": self.urls_spread_html,
                "urls_front_plain": self.urls_front_plain,
                "urls_spread_plain": self.urls_spread_plain,
                "words_spread_plain": self.words_spread_plain, "headers": self.headers_added,
                "licence_front": self.licence_front, "licence_end": self.licence_end,
                "stars_hidden": self.stars_hidden}

    # --- the attacks: the padded message, or None where it cannot be written -------------

    def links_hidden(self, raw: bytes, n: int) -> bytes | None:
        links = " ".join(f'<a href="{self.url(i)}">.</a>' for i in range(n))
        return _before_body_end(raw, f'<div style="display:none">{links}</div>')

    def images_hidden(self, raw: bytes, n: int) -> bytes | None:
        images = " ".join(f'<img src="{self.url(i, "gif")}">' for i in range(n))
        return _before_body_end(raw, f'<div style="display:none">{images}</div>')

    def urls_front_html(self, raw: bytes, n: int) -> bytes | None:
        if not _html(raw):
            return None
        start = _BODY.search(raw).end()
        links = " ".join(f'<a href="{u}">{u}</a>' for u in map(self.url, range(n)))
        return raw[:start] + f'<div style="display:none">{links}</div>'.encode() + raw[start:]

    def urls_spread_html(self, raw: bytes, n: int) -> bytes | None:
        if not _html(raw):
            return None
        start, end = _BODY.search(raw).end(), raw.lower().rfind(b"</body>")
        hidden = (lambda j: b'<span style="display:none"> ' + self.url(j).encode()
                  + b" </span>")
        out, count, j = [hidden(10 ** 6)], 0, 0
        for piece in _TAG.split(raw[start:end]):
            if piece.startswith(b"<"):
                out.append(piece)
                continue
            for token in re.split(rb"(\s+)", piece):
                out.append(token)
                if token.strip():
                    count += 1
                    if count % _step(n) == 0:
                        out.append(hidden(j))
                        j += 1
        return raw[:start] + b"".join(out) + raw[end:]

    def urls_front_plain(self, raw: bytes, n: int) -> bytes | None:
        head, body = _plain(raw)
        if head is None:
            return None
        return head + b"\n\n" + " ".join(map(self.url, range(n))).encode() + b"\n" + body

    def urls_spread_plain(self, raw: bytes, n: int) -> bytes | None:
        return _spread_plain(raw, n, self.url)

    def words_spread_plain(self, raw: bytes, n: int) -> bytes | None:
        return _spread_plain(raw, n, lambda j: self.words[j % len(self.words)])

    def headers_added(self, raw: bytes, n: int) -> bytes | None:
        return self.headers(n) + raw

    def licence_front(self, raw: bytes, n: int) -> bytes | None:
        return _paragraph(raw, _licence(n), front=True)

    def licence_end(self, raw: bytes, n: int) -> bytes | None:
        return _paragraph(raw, _licence(n), front=False)

    def stars_hidden(self, raw: bytes, n: int) -> bytes | None:
        if not _single_html(raw):
            return None
        start = _BODY.search(raw).end()
        return (raw[:start] + b'<div style="display:none">' + b"&#9733;" * (n * STARS)
                + b"</div>" + raw[start:])


@functools.cache
def _licence_words() -> tuple[str, ...]:
    return tuple(LICENCE.read_text().split())


def _licence(n: int) -> str:
    words = _licence_words()
    return " ".join(words[i % len(words)] for i in range(n * LICENCE_WORDS))


def _single_html(raw: bytes) -> bool:
    """A single-part HTML spam (so what is added is what the character model reads first)."""
    head = raw.partition(b"\n\n")[0].lower()
    return _html(raw) and b"multipart/" not in head


def _paragraph(raw: bytes, text: str, front: bool) -> bytes | None:
    """`text` as a paragraph in front of or after the text of a single-part HTML or
    plain-text spam."""
    if _single_html(raw):
        at = _BODY.search(raw).end() if front else raw.lower().rfind(b"</body>")
        return raw[:at] + f"<p>{html.escape(text)}</p>".encode() + raw[at:]
    head, body = _plain(raw)
    if head is None:
        return None
    block = text.encode() + b"\n"
    return head + b"\n\n" + (block + b"\n" + body if front else body + b"\n" + block)


def _step(n: int) -> int:
    """Words of the spam between two insertions, so that n land in every 200 words."""
    return max(1, (200 - n) // n) if n < 200 else 1


def _html(raw: bytes) -> bool:
    low = raw.lower()
    return (b"content-transfer-encoding: base64" not in low and b"</body>" in low
            and _BODY.search(raw) is not None)


def _before_body_end(raw: bytes, block: str) -> bytes | None:
    if not _html(raw):
        return None
    end = raw.lower().rfind(b"</body>")
    return raw[:end] + block.encode() + raw[end:]


def _plain(raw: bytes) -> tuple[bytes | None, bytes]:
    """(head, body) of a plain-text single-part message, (None, b"") otherwise."""
    head, sep, body = raw.partition(b"\n\n")
    low = head.lower()
    if not sep or any(m in low for m in (b"multipart/", b"text/html", b"base64",
                                         b"quoted-printable")):
        return None, b""
    return head, body


def _spread_plain(raw: bytes, n: int, item) -> bytes | None:
    head, body = _plain(raw)
    if head is None:
        return None
    out, count, j = [], 0, 0
    for token in re.split(rb"(\s+)", body):
        out.append(token)
        if token.strip():
            count += 1
            if count % _step(n) == 0:
                out.append(b" " + item(j).encode() + b" ")
                j += 1
    return head + b"\n\n" + item(10 ** 6).encode() + b" " + b"".join(out)


def measure(definitions, spam: list[bytes], names: list[str]) -> dict[str, tuple]:
    """{attack: (spam it applies to, [still caught at each of COUNTS])}, over the spam the
    set catches at the default sensitivity."""
    engine = HeuristicEngine(definitions)
    threshold = threshold_for(1)
    caught = [raw for raw in spam if engine.score(view_of(raw)).score >= threshold]
    attacks = Padding(definitions.weights).attacks()
    results = {}
    for name in names:
        attack = attacks[name]
        applies = [raw for raw in caught if attack(raw, 1) is not None]
        results[name] = (len(applies), [sum(engine.score(view_of(attack(raw, n))).score
                                            >= threshold for raw in applies)
                                        for n in COUNTS])
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, action="append", dest="sets")
    parser.add_argument("--attack", action="append", dest="attacks",
                        choices=list(Padding({}).attacks()))
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    names = args.attacks or list(Padding({}).attacks())
    if any(name.startswith("licence") for name in names):
        _licence_words()                    # a missing licence file fails before scoring
    spam = [s.path.read_bytes().replace(b"\r\n", b"\n") for s in corpus_messages(args.corpus)
            if s.split == "train" and s.label == "spam"]
    print("| attack | set | spam it applies to | " + " | ".join(map(str, COUNTS)) + " |")
    print("|---|---|---|" + "---|" * len(COUNTS))
    for directory in args.sets or [defs.PACKAGED_DIR]:
        definitions = defs.load(directory)
        for name, (applies, kept) in measure(definitions, spam, names).items():
            shares = " | ".join(f"{100 * k / applies:.1f} %" if applies else "—" for k in kept)
            print(f"| {name} | {definitions.label} | {applies} | {shares} |", flush=True)
    print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
