"""Ham that quotes a spam: how many replies rise to each sensitivity's score when they quote
a caught spam (docs/antispam-model.md, "Header fields as padding"; review28b's probe). Training
part only: the held-out part is not read.

Spam words travel into legitimate mail: list replies keep "Re: <the spam's Subject>", people
forward spam to a helpdesk and discuss it. Each of 60 single-part plain-text training ham
replies (with In-Reply-To and a Subject) gets the first N words of one of 10 caught training
spam quoted ("> ", 10 words a line) after its text, with the spam's Subject ("Re: ...") or its
own, and is scored by each set; the table counts the replies at 50, 70 and 90 or more.

    .venv/bin/python -m bench.quoted_spam [--set DIR ...]     # ~1 min a set

Each --set is a spam definitions directory (default: the packaged set); the spam quoted are
those the first set catches at 90.
"""

from __future__ import annotations

import argparse
import email
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.scan.antispam import definitions as defs                  # noqa: E402
from core.scan.antispam.engine import HeuristicEngine               # noqa: E402
from core.scan.antispam.training import DEFAULT_CORPUS, corpus_messages, view_of   # noqa: E402

REPLIES, SPAM = 60, 10
PROBES = (("unmodified", None, 0), ("the spam's Subject, 60 words", "spam", 60),
          ("the spam's Subject, 200 words", "spam", 200),
          ("the reply's own Subject, 200 words", "own", 200))
_SUBJECT = re.compile(rb"(?im)^subject:.*(\n[ \t].*)*")


def _plain(raw: bytes):
    message = email.message_from_bytes(raw)
    if message.is_multipart() or message.get_content_type() != "text/plain":
        return None
    return message


def _spread(items: list, count: int) -> list:
    return items[::max(1, len(items) // count)][:count]


def quoting(reply: bytes, subject: str, words: list[str], count: int, keep_subject: bool) -> bytes:
    """`reply` with the first `count` of `words` quoted after its text, and the Subject
    "Re: `subject`" unless `keep_subject`."""
    head, _, body = reply.partition(b"\n\n")
    if not keep_subject:
        head = _SUBJECT.sub(b"Subject: Re: " + subject.encode("latin-1", "replace"), head,
                            count=1)
    quoted = "\n".join("> " + " ".join(words[i:i + 10])
                        for i in range(0, min(count, len(words)), 10))
    return head + b"\n\n" + body + b"\n\n" + quoted.encode("latin-1", "replace") + b"\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", type=Path, dest="sets")
    args = parser.parse_args(argv)
    if not (DEFAULT_CORPUS / "MANIFEST").exists():
        print(f"quoted_spam: no corpus at {DEFAULT_CORPUS}", file=sys.stderr)
        return 2
    sets = [defs.load(d) for d in (args.sets or [defs.PACKAGED_DIR])]
    engines = [HeuristicEngine(s) for s in sets]
    train = [s for s in corpus_messages() if s.split == "train"]
    replies, spam = [], []
    for sample in train:
        raw = sample.path.read_bytes()
        message = _plain(raw)
        if message is None or not message["Subject"]:
            continue
        if sample.label == "ham" and message["In-Reply-To"]:
            replies.append(raw)
        elif sample.label == "spam" and engines[0].score(view_of(raw)).score >= 90:
            text = message.get_payload(decode=True).decode("latin-1", "replace")
            spam.append((str(message["Subject"]).replace("\n", " "), text.split()))
    replies, spam = _spread(replies, REPLIES), _spread(spam, SPAM)
    print(f"{len(replies)} training ham replies, quoting {len(spam)} caught training spam\n")
    print("| probe | set | ham ≥ 50 | ≥ 70 | ≥ 90 |\n|---|---|---|---|---|")
    for name, subject, count in PROBES:
        messages = [reply if subject is None else
                    quoting(reply, *spam[i % len(spam)], count, subject == "own")
                    for i, reply in enumerate(replies)]
        for definitions, engine in zip(sets, engines):
            scores = [engine.score(view_of(m)).score for m in messages]
            print(f"| {name} | {definitions.label} | "
                  + " | ".join(str(sum(s >= t for s in scores)) for t in (50, 70, 90)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
