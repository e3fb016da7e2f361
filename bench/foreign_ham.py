"""How the heuristic engine scores ordinary mail in languages the corpus does not have.

    .venv/bin/python bench/foreign_ham.py --book DIR [--pages 60]          # ~10 s

The corpus is English mail of 2002; its only mail in Asian charsets is spam (and one Japanese
ham). This sends nothing: it builds plain personal mails from the prose of a translated book
(the HTML of *Rust by Example*, whose `ja/`, `ko/`, `zh/` and `es/` folders rustup installs
under `share/doc/rust/html/rust-by-example/`), up to 1,200 characters each, in each
language's usual mail charset and in UTF-8, and scores them with the shipped definitions.
It prints, per language and charset, the median and highest score and how many reach 90
(sensitivity 1, the default) and 50 (sensitivity 5). docs/antispam.md, "Detection quality",
has the figures.
"""

from __future__ import annotations

import argparse
import email.utils
import html
import re
import sys
from email.header import Header
from email.mime.text import MIMEText
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.scan.antispam.engine import HeuristicEngine, threshold_for   # noqa: E402
from core.scan.antispam.training import view_of                       # noqa: E402

CHARSETS = {"ja": ("iso-2022-jp", "utf-8"), "ko": ("euc-kr", "utf-8"),
            "zh": ("gb2312", "utf-8"), "es": ("iso-8859-1", "utf-8")}
MAIL_CHARS = 1200
_MAIN = re.compile(r"<main>(.*?)</main>", re.S)
_CODE = re.compile(r"<pre>.*?</pre>", re.S)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def prose(folder: Path) -> list[str]:
    """The running text of each page of one translation (code blocks left out)."""
    texts = []
    for page in sorted(folder.rglob("*.html")):
        found = _MAIN.search(page.read_text(encoding="utf-8"))
        if found:
            text = html.unescape(_SPACE.sub(" ", _TAG.sub(" ", _CODE.sub(" ", found[1])))).strip()
            if len(text) > 300:
                texts.append(text)
    return texts


def mail(text: str, charset: str) -> bytes:
    """A plain personal mail whose body and Subject are `text` in `charset` (characters the
    charset lacks left out, as a mail program would have to)."""
    def fit(s):
        return s.encode(charset, "ignore").decode(charset)
    msg = MIMEText(fit(text[:MAIL_CHARS]) + "\n\n--\nTanaka\n", "plain", charset)
    msg["Subject"] = Header(fit(text[:30]), charset)
    msg["From"] = "colleague@example.co.jp"
    msg["To"] = "team@example.co.jp"
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain="example.co.jp")
    return msg.as_bytes()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--book", type=Path, required=True,
                        help="the rust-by-example folder that holds ja/, ko/, zh/ and es/")
    parser.add_argument("--pages", type=int, default=60)
    args = parser.parse_args(argv)
    engine = HeuristicEngine()
    print("| language | charset | mails | median | highest | >= 90 | >= 50 |")
    print("|---|---|---|---|---|---|---|")
    for language, charsets in CHARSETS.items():
        pages = prose(args.book / language)[:args.pages]
        for charset in charsets:
            scores = sorted(engine.score(view_of(mail(text, charset))).score for text in pages)
            if not scores:
                continue
            print(f"| {language} | {charset} | {len(scores)} | {scores[len(scores) // 2]} "
                  f"| {scores[-1]} | {sum(s >= threshold_for(1) for s in scores)} "
                  f"| {sum(s >= threshold_for(5) for s in scores)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
