"""Message -> the set of tokens the statistical classifier weighs (SPEC §3 heuristic.*).

What it owns
    `tokens(view)` reads a `core.pipeline.view.MessageView` (the decomposed message every
    check shares) and returns the set of its tokens: words of the Subject and of the decoded
    text, selected header facts, the words of every header value per header name, the HTML
    markup and the URLs of HTML and text parts, and the attachments' types; plus a few
    message facts: upper-case words, size and count buckets, and whether the sender's domain
    is the one of the Return-Path, Message-ID, Reply-To, Received chain and linked URLs (a
    newsletter links its own site; spam mostly links someone else's). Tokens carry a prefix
    saying where they come from ("s:" subject, "h:"/"H:" header, "u:" URL, "t:" HTML tag,
    "c:" sender consistency, "n:" bucket, ...), so "free" in the Subject and "free" in the
    body are learned separately.

Rules
    1. Pure and deterministic: the same view gives the same tokens (the model is trained on
       exactly what the engine sees). The training script builds views with the same
       decomposer as the pipeline.
    2. Bounded: at most MAX_TEXT_CHARS of text and MAX_TOKENS tokens per message, so a huge
       message costs no more than a large one.
    3. Never raises for anything in the message.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from core.pipeline.decompose.text import as_read

__all__ = ["tokens", "window_tokens", "urls", "without_urls", "registered_domain",
           "MAX_TOKENS", "MAX_TEXT_CHARS"]

MAX_TEXT_CHARS = 200_000
MAX_TOKENS = 5_000
MAX_HTML_CHARS = 300_000

_WORD = re.compile(r"[^\s\"'(),;:<>\[\]{}|`]+")
_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s\"'<>()\[\]{}]{2,300}")
_HREF = re.compile(r"""(?i)\b(?:href|src|action)\s*=\s*["']?([^"'\s>]{1,400})""")
_TAG = re.compile(r"<\s*(/?)([a-zA-Z][a-zA-Z0-9]{0,15})([^>]{0,400})>")
_ATTR = re.compile(r"""(?i)\b(color|bgcolor|size|face|width|height|align|style|border)\s*=""")
_IP_HOST = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
# a search starts only where a run starts (the look-behind): an attempt from inside a run finds
# what the one from its start found, and each one would scan on to the run's "@"
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")
# white space, then the subject's last word; from the start of a run only, as _EMAIL
_PADDED = re.compile(r"(?<!\s)\s{5,}\S+$")
_HEADER_WORDS = ("from", "reply-to", "to", "cc", "x-mailer", "user-agent", "organization",
                 "content-type", "message-id", "return-path", "x-priority", "x-msmail-priority",
                 "precedence", "list-id", "mailing-list", "errors-to", "sender")
_STRIP_CHARS = ".,!?*-_=#+~/\\"
# header words per header name ("H:<name>:<word>"), except headers that carry dates, serial
# numbers or a filter's verdict (the corpus' own X-Spam-* marks must teach nothing)
_HWORD = re.compile(r"[A-Za-z][A-Za-z'$-]{1,19}|\$?\d[\d,.]*%?")
_HEADER_SKIP = frozenset(("date", "received", "message-id", "status", "x-status", "x-keywords",
                          "x-uid", "delivered-to", "x-original-date", "x-mailman-version"))
_CAPS_WORD = re.compile(r"\b[A-Z]{3,15}\b")
_RECEIVED_IP = re.compile(r"\[(\d+\.\d+\.\d+)\.\d+\]")
_RECEIVED_WITH = re.compile(r"(?i)\bwith\s+(\S+)")
_ADDRESS_DOMAIN = re.compile(r"@([\w-]+(?:\.[\w-]+)+)")
_SECOND_LEVEL = frozenset(("co", "com", "org", "net", "ac", "gov", "ne", "or"))


def _words(text: str, prefix: str, out: set[str]) -> None:
    for word in _WORD.findall(text[:MAX_TEXT_CHARS]):
        word = word.strip(_STRIP_CHARS).lower()
        length = len(word)
        if length < 3:
            if word in ("$", "!!", "$$"):
                out.add(prefix + word)
            continue
        if length > 20:
            # long strings: keep their shape, not their text (SpamBayes "skip" tokens)
            out.add(f"{prefix}skip:{word[0]} {length // 10 * 10}")
            if "@" in word:
                match = _EMAIL.search(word)
                if match:
                    out.add(prefix + "email:" + match.group(1))
            continue
        out.add(prefix + word)
        if word[0] == "$" or word[-1] == "%":
            out.add(prefix + "money" if word[0] == "$" else prefix + "percent")


def urls(text: str) -> list[str]:
    """The URLs written in `text` (plain text or HTML), in order."""
    found = [m.group(0) for m in _URL.finditer(text[:MAX_HTML_CHARS])]
    found += [m.group(1) for m in _HREF.finditer(text[:MAX_HTML_CHARS])
              if m.group(1).lower().startswith(("http", "www", "mailto:"))]
    return found


def without_urls(text: str) -> str:
    """`text` with the URLs written in it (as `urls` finds them in text) each made a space."""
    return _URL.sub(" ", text)


def registered_domain(host: str) -> str:
    """The registered domain of a host name: the last two labels, three under a country's
    second level ("example.co.uk")."""
    labels = host.lower().strip(".").split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _domain_of(value: str | None) -> str | None:
    found = _ADDRESS_DOMAIN.findall(value[:1000]) if value else None
    return registered_domain(found[-1]) if found else None


def _bucket(n: int) -> int:
    """0, 1, 2, ... for 0, 1, 2-3, 4-7, ...: a count's order of magnitude."""
    return n.bit_length() if n > 0 else 0


def _url_tokens(url: str, out: set[str], hosts: set[str] | None = None) -> None:
    lower = url.lower()
    if lower.startswith("mailto:"):
        out.add("u:mailto")
        domain = lower.partition("@")[2].split("?")[0]
        if domain:
            out.add("u:mailto:" + domain)
        return
    if lower.startswith("www."):
        lower = "http://" + lower
    try:
        parts = urlsplit(lower)
    except ValueError:
        out.add("u:bad")
        return
    host = (parts.hostname or "").strip(".")
    if not host:
        return
    out.add("u:scheme:" + parts.scheme)
    if _IP_HOST.match(host):
        out.add("u:ip")
    else:
        if hosts is not None and len(hosts) < 200:
            hosts.add(registered_domain(host))
        labels = host.split(".")
        for i in range(max(0, len(labels) - 3), len(labels) - 1):
            out.add("u:" + ".".join(labels[i:]))
    try:
        if parts.port:
            out.add("u:port")
    except ValueError:          # "host:$/" or a port over 65535: a port all the same
        out.add("u:port")
    if "%" in parts.path or "@" in parts.netloc:
        out.add("u:obfuscated")
    for word in re.split(r"[/._\-?=&]+", parts.path)[:8]:
        if 2 < len(word) < 20 and not word.isdigit():
            out.add("up:" + word)


def _html_tokens(markup: str, out: set[str], hosts: set[str]) -> None:
    markup = markup[:MAX_HTML_CHARS]
    seen_tags = 0
    for match in _TAG.finditer(markup):
        seen_tags += 1
        if seen_tags > 2000:
            break
        closing, name, attrs = match.groups()
        name = name.lower()
        if closing:
            continue
        out.add("t:" + name)
        for attr in _ATTR.findall(attrs):
            out.add(f"t:{name}:{attr.lower()}")
    for url in urls(markup):
        _url_tokens(url, out, hosts)
    if "<!--" in markup:
        out.add("t:comment")
    if re.search(r"(?i)&#\d{2,5};", markup[:50_000]):
        out.add("t:numeric-entity")


def _header_tokens(view, out: set[str]) -> None:
    names = set()
    for name, value in view.headers[:200]:
        lname = name.lower()
        names.add(lname)
        if lname in _HEADER_WORDS:
            short = "h:" + lname + ":"
            value = value[:500]
            if lname in ("message-id", "return-path", "errors-to", "sender", "list-id"):
                domain = value.rpartition("@")[2].strip(" <>").lower()
                out.add(short + domain[-40:])
            elif lname in ("to", "cc"):
                count = value.count("@")
                out.add(short + ("n" + str(min(count, 5))))
                for match in _EMAIL.finditer(value):
                    out.add(short + match.group(1).lower())
                if not value.strip() or "undisclosed" in value.lower():
                    out.add(short + "undisclosed")
            else:
                _words(value, short, out)
        elif lname == "received":
            for host in re.findall(r"(?i)\b(?:from|by)\s+([\w.-]+)", value[:500]):
                labels = host.lower().strip(".").split(".")
                if len(labels) >= 2:
                    out.add("h:rcvd:" + ".".join(labels[-2:]))
            for net in _RECEIVED_IP.findall(value[:500]):
                out.add("h:rip:" + net)
            match = _RECEIVED_WITH.search(value[:500])
            if match:
                out.add("h:rwith:" + match.group(1).lower()[:20])
        if lname not in _HEADER_SKIP and not lname.startswith("x-spam"):
            short = "H:" + lname[:30] + ":"
            for word in _HWORD.findall(value[:300])[:30]:
                out.add(short + word.lower())
    for lname in names:
        out.add("hn:" + lname)
    for must in ("date", "message-id", "from", "to", "subject"):
        if must not in names:
            out.add("hn:missing:" + must)


def _consistency_tokens(view, hosts: set[str], out: set[str]) -> None:
    """Whether the From domain is also the domain of the Return-Path, Message-ID, Reply-To
    and Sender, appears in the Received chain, and is the domain the URLs link to."""
    sender = _domain_of(view.header("from"))
    if not sender:
        out.add("c:nofromdomain")
        return
    for name, tag in (("return-path", "rp"), ("message-id", "mid"), ("reply-to", "rt"),
                      ("sender", "snd")):
        domain = _domain_of(view.header(name))
        if domain:
            out.add(f"c:{tag}_{'same' if domain == sender else 'diff'}")
    received = " ".join(v[:1000] for v in view.header_all("received")[:10]).lower()
    out.add("c:rcvd_" + ("has" if sender in received else "no"))
    if hosts:
        same = sum(h == sender for h in hosts)
        out.add("c:url_" + ("all" if same == len(hosts) else "some" if same else "none"))
        out.add(f"c:urldoms{min(len(hosts), 5)}")
    else:
        out.add("c:nourl")


def _shape_tokens(view, out: set[str]) -> None:
    """Upper-case words (case kept) and order-of-magnitude buckets of the text."""
    text = view.body_text()[:50_000]
    for word in _CAPS_WORD.findall(text[:20_000]):
        out.add("C:" + word)
    for word in _CAPS_WORD.findall(view.subject or ""):
        out.add("sC:" + word)
    out.add(f"n:urls{_bucket(len(urls(text)))}")
    out.add(f"n:len{_bucket(len(text) // 100)}")
    out.add(f"n:parts{min(len(view.parts), 6)}")
    out.add(f"n:bang{_bucket(text.count('!'))}")
    out.add(f"n:dollar{_bucket(text.count('$'))}")
    out.add(f"n:lines{_bucket(text.count(chr(10)) + 1)}")


def tokens(view, text_parts: list | None = None) -> set[str]:
    """The token set of a message view (module rules 1-3); each part whose text it read is
    added to `text_parts` when given (the windows are those parts', windows.py)."""
    out: set[str] = set()
    subject = as_read(view.subject or "")       # as a part's text is (decompose/text.py)
    _words(subject, "s:", out)
    if subject:
        letters = [c for c in subject if c.isalpha()]
        if len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
            out.add("s:shape:caps")
        if "!" in subject:
            out.add("s:shape:bang")
        if _PADDED.search(subject):
            out.add("s:shape:padded")
    else:
        out.add("s:shape:empty")
    _header_tokens(view, out)
    _shape_tokens(view, out)
    hosts: set[str] = set()
    has_plain = has_html = False
    for part in view.parts:
        ctype = part.content_type
        if part.id != 0 or not part.is_multipart:
            out.add("ct:" + ctype)
        if part.charset:
            out.add("cs:" + part.charset.lower()[:20])
        if part.transfer_encoding:
            out.add("cte:" + part.transfer_encoding.lower()[:20])
        if part.is_attachment or part.origin != "mime":
            out.add("att:" + (part.true_type or "data"))
            if part.extension:
                out.add("att:ext" + part.extension[:10])
            continue
        if part.text is None:
            continue
        if ctype == "text/html":
            has_html = True
            _html_tokens(part.data.decode("utf-8", "replace"), out, hosts)
        else:
            has_plain = True
            for url in urls(part.text):
                _url_tokens(url, out, hosts)
        _words(part.text, "", out)
        if text_parts is not None:
            text_parts.append(part)
        if len(out) > MAX_TOKENS:
            break
    _consistency_tokens(view, hosts, out)
    if has_html and not has_plain:
        out.add("shape:html-only")
    if not has_html and not has_plain:
        out.add("shape:no-text")
    return out


def window_tokens(text_parts, words: int):
    """The text tokens of each window of `words` words (white space split) of each of
    `text_parts` — the parts `tokens` read the text of, so no more than it reads —, window
    by window: its words, upper-case words and URLs, made as `tokens` makes them
    (windows.py rule 2)."""
    for part in text_parts:
        split = part.text[:MAX_TEXT_CHARS].split()
        for start in range(0, len(split), words):
            chunk = " ".join(split[start:start + words])
            out: set[str] = set()
            _words(chunk, "", out)
            for word in _CAPS_WORD.findall(chunk):
                out.add("C:" + word)
            for url in urls(chunk):
                _url_tokens(url, out)
            yield out
