"""The bounded character model: how much a message's characters read like spam's or ham's
(docs/antispam-model.md, "Character models (fifteenth session)"; the twenty-fourth session's
bounded model C; docs/antispam-model.md, "Recall elsewhere").

What it owns
    Two character models, one of the training spam and one of the training ham, read the
    message's text byte by byte; the evidence `e` is the mean over its bytes of the clipped
    log-ratio of the two. When the definitions hold it (definitions.py, `chars.npz` and
    "scoring": {"chars": ...}), the engine adds it after the windowed reading:

        z = max(sum, windowed - delta) + lambda * e

    so a message's characters can move z by at most lambda * clip either way. A set
    without it scores as before.

Rules
    1. The text (`char_text`): the Subject (as_read, of the as_learned view) and the text of
       the parts tokenizer.tokens read (its `text_parts`, no more), joined by spaces; lower
       case, white space collapsed, the first `max_chars` characters; UTF-8, the non-ASCII
       bytes removed, white space collapsed again. So no script is read as such: a text in
       another script leaves only its ASCII (signatures, numbers, addresses). With "drop_urls"
       the URLs written in each piece (tokenizer.without_urls, the pattern the URL tokens
       are read with) are removed before anything else: the tokens read them, and a run of
       URLs in front of the text would otherwise fill the characters read
       (docs/antispam-model.md, "The English-gated character model"); a URL's first 300
       characters go, as the tokens read it. Whatever the text holds, no more than its
       first tokenizer.MAX_HTML_CHARS characters are read, as the tokens read no more (a
       body of white space or URLs collapses to nothing, and reading on would cost time
       with the message's size: review28a R2). The text's words (its runs of letters, any
       script, before the non-ASCII bytes go) are counted, and how many of them are
       ENGLISH_WORDS.
    2. The models: Witten-Bell interpolated, of `order` (a context of up to `order` bytes),
       interpolated down to order 0 and then a uniform 1/256; each text is preceded by
       `order` start bytes (0x02), context only, never predicted. Counts are unweighted (a
       hard ham counts once). Trained from (text, is_spam) pairs (`train`).
    3. What ships (`Tables`): per order n, the sorted (n+1)-byte grams seen in either model
       with log P_spam - log P_ham (the full interpolated values), and the sorted n-byte
       contexts seen in either with log alpha_spam - log alpha_ham (alpha = T / (c + T), 1
       where unseen). A byte's log-ratio is the sum of the context terms of the orders at
       which its gram is unseen in both, plus the stored gram difference at the longest order
       where it is seen: exactly the two models' Witten-Bell log-ratio (a gram unseen by one
       model backs off in it with the same alpha and lower order as the stored value does).
       Stored as float32 (the evidence stays within 1e-4 of the float64 tables' on the
       training part; measured in the report).
    4. The evidence (`Tables.evidence`): the sum over the bytes of clip(log-ratio, +-clip),
       in nats, divided by the number of bytes ("denominator": "ascii"), or by the number of
       characters of the text before its non-ASCII bytes were removed ("all": the
       `max_chars` characters of rule 1 after the first collapse, so a removed character,
       and white space the second collapse merged, counts with log-ratio 0, and a mostly
       non-Latin text's few ASCII leftovers do not decide alone; the mend declared in
       docs/antispam-model.md, "Recall elsewhere"). With a "prior" k above 0 that is
       multiplied by A / (A + k), A the bytes read: the mean per byte shrunk toward 0 as if k
       neutral bytes had been read beside them, so a few bytes cannot give a confident mean
       (with "all": S / (A + k) * A / N; docs/antispam-model.md, "The prior on the ASCII
       bytes"). An empty text gives 0. With a "min_ascii_share" s above 0 the evidence is 0
       unless the bytes read are at least s of the text's characters (A >= s * N): a text
       mostly in another script is one the model cannot read, so its ASCII leftovers (a
       link, a signature, an English line) say nothing either way and the windowed reading
       stands alone (docs/antispam-model.md, "The gated character model"). With a
       "min_english_share" s above 0 the evidence is also 0 unless at least s of the text's
       words are ENGLISH_WORDS (none when it has no word): the tables are trained on English
       mail, and a text in another Latin-script language passes the ASCII gate but reads
       as spam by its unfamiliar byte sequences (docs/antispam-model.md, "The English-gated
       character model").
    5. Never raises for anything in a message; pure (numpy at scoring).
    6. The file (`Tables.from_bytes`, definitions.py's chars.npz) is read bounded and
       without pickle: its members' declared sizes together at most MAX_TABLE_BYTES, each
       a 1-d little-endian int64 or float32 .npy whose header's shape is the data it holds,
       checked before anything is allocated, and no member inflated past its declared
       size (stored or deflated members only); anything else is a ValueError naming the
       member and the rule.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Chars", "CharText", "Tables", "char_text", "train", "START", "BASE", "DENOMINATORS",
           "ENGLISH_WORDS", "MAX_ORDER", "MAX_CHARS", "MAX_TABLE_BYTES"]

START = 2                   # the start byte (rule 2)
BASE = 128                  # a byte's place in a gram code: the text is ASCII (rule 1)
DENOMINATORS = ("ascii", "all")
MAX_ORDER = 7               # 7 bits a byte: a gram of 8 bytes is the most a 64-bit code holds
# The most "max_chars" a set may ask for: rule 1 reads up to 4 * max_chars + 64 characters
# and rule 4 codes each byte in int64 arrays (about 32 bytes a byte), so 100,000 keeps a
# message's cost to a few MB and ms inside the scan worker's memory limit
# (core/pipeline/run.py, MEMORY_HEADROOM_MIB); the declared model reads 3,000.
MAX_CHARS = 100_000
# The most a chars.npz may unpack to, all members together, checked on the archive's
# declared sizes before anything is inflated (a zip bomb, or a header claiming a huge
# shape, is refused without the memory): every scan worker holds the tables within its
# 256 MB headroom (core/pipeline/run.py, MEMORY_HEADROOM_MIB); the order-5 tables of the
# training part unpack to 22 MB, so 64 MB leaves room for a larger corpus and no more.
MAX_TABLE_BYTES = 64 * 2**20

# Rule 4's English gate: common English function words, leaving out the ones that are the
# commonest words of another Latin-script language of Europe ("a", "in", "to", "is", "on",
# "at", "for", "was", "will", "me", "my", "no", "do", "he", "are": Polish "to", Dutch "is",
# French "on", Danish "at" and "for", German "was" and "will", Romanian "are"...). In
# English prose they are about a fifth of the words; a letter in Portuguese, Spanish,
# Italian or German holds almost none. Some remain words elsewhere (review28a R1: Dutch
# "we", "of", "had"; Polish "we", "by"; Czech "by"; Hungarian "be"; Swedish "all", "just";
# Turkish "can"), so a Dutch, Polish or Swedish letter can reach one word in twenty.
ENGLISH_WORDS = frozenset("""
    the and of it you your with this that these those which what who whom whose when where
    why how we our they their them his she its have had would could should been not from or
    if were be than then there here into about just only more some any all by can please
    """.split())

# the longest start of a URL the URL pattern does not find: "https://" and one character
_URL_CUT = 9
_WS = re.compile(r"\s+")
_LETTERS = re.compile(r"[^\W\d_]+")
_WSB = re.compile(rb"\s+")
_NONASCII = re.compile(rb"[\x80-\xff]+")


@dataclass(frozen=True)
class CharText:
    """Rule 1's text, how many characters it had before its non-ASCII bytes were removed
    (rule 4's "all"), its words and how many of them are ENGLISH_WORDS (rule 4's English
    gate)."""
    data: bytes
    characters: int
    words: int = 0
    english: int = 0


@dataclass(frozen=True)
class Chars:
    """How a definitions set reads characters ("scoring": {"chars": ...}) and its tables."""
    order: int
    lam: float                      # "lambda"
    clip: float
    max_chars: int
    denominator: str                # rule 4: "ascii" or "all"
    prior: int                      # rule 4: k neutral bytes; 0 for none
    min_share: float                # rule 4: "min_ascii_share"; 0 for no gate
    tables: Tables = field(compare=False, repr=False)
    min_english: float = 0.0        # rule 4: "min_english_share"; 0 for no gate
    drop_urls: bool = False         # rule 1: "drop_urls"

    def evidence(self, view, text_parts) -> float:
        """e of one reading: `view` the as_learned view features() read, `text_parts` the
        parts tokenizer.tokens read."""
        text = char_text(view, text_parts, self.max_chars, self.drop_urls)
        return self.tables.evidence(text, self.clip, self.denominator, self.prior,
                                    self.min_share, self.min_english)

    def settings(self) -> dict:
        """The model's "scoring" "chars" value."""
        return {"order": self.order, "lambda": self.lam, "clip": self.clip,
                "max_chars": self.max_chars, "denominator": self.denominator,
                **({"prior": self.prior} if self.prior else {}),
                **({"min_ascii_share": self.min_share} if self.min_share else {}),
                **({"min_english_share": self.min_english} if self.min_english else {}),
                **({"drop_urls": True} if self.drop_urls else {})}


def char_text(view, text_parts, max_chars: int, drop_urls: bool = False) -> CharText:
    """Rule 1. `view`: the as_learned view features() read; `text_parts`: tokenizer.tokens'.
    Only a prefix long enough is read: white-space collapsing is local, so the first
    `max_chars` characters of a collapsed prefix longer than `max_chars` are the whole's.
    Removing URLs only shortens a prefix, but for a URL cut where the prefix ends: too
    short to be found (at most _URL_CUT characters), its start may stay, so with
    `drop_urls` a prefix must give that many characters more (review28a R5)."""
    from core.pipeline.decompose.text import as_read
    from core.scan.antispam.tokenizer import MAX_HTML_CHARS, without_urls
    pieces = [as_read(view.subject or "")] + [p.text for p in text_parts]
    total = min(sum(map(len, pieces)) + len(pieces), max(MAX_HTML_CHARS, 4 * max_chars + 64))
    enough = max_chars + (_URL_CUT if drop_urls else 0)
    n = 4 * max_chars + 64
    while True:
        n = min(n, total)
        out, left = [], n
        for piece in pieces:
            if left <= 0:
                break
            out.append(without_urls(piece[:left]) if drop_urls else piece[:left])
            left -= len(piece) + 1
        text = _WS.sub(" ", " ".join(out).lower()).strip()
        if len(text) > enough or n >= total:
            break
        n *= 4
    text = text[:max_chars]
    words = _LETTERS.findall(text)
    data = _NONASCII.sub(b"", text.encode("utf-8", "replace"))
    return CharText(_WSB.sub(b" ", data).strip(), len(text), len(words),
                    sum(word in ENGLISH_WORDS for word in words))


def _codes(data: bytes, order: int) -> np.ndarray:
    """The order-`order` gram code of every byte of `data` (its `order` bytes of context,
    start bytes before the text, and itself; 7 bits a byte, the oldest first)."""
    x = np.frombuffer(bytes([START]) * order + data, dtype=np.uint8).astype(np.int64)
    length = len(data)
    code = x[0:length].copy()
    for d in range(1, order + 1):
        code = code * BASE + x[d:d + length]
    return code


class Tables:
    """Rule 3's tables: `orders[n]` = (gram codes, log-ratio, context codes, context
    log-ratio), sorted codes, for n = 0..order."""

    def __init__(self, order: int, orders: list):
        self.order = order
        self.orders = orders

    def evidence(self, text: CharText, clip: float, denominator: str = "ascii",
                 prior: int = 0, min_share: float = 0.0, min_english: float = 0.0) -> float:
        """Rule 4."""
        data = text.data
        if (not data or len(data) < min_share * text.characters
                or (min_english and (not text.words
                                     or text.english < min_english * text.words))):
            return 0.0
        if max(data) >= BASE:
            raise ValueError("the character text is ASCII (rule 1)")
        order = self.order
        code = _codes(data, order)
        total = 0.0
        acc = np.zeros(len(code))
        for n in range(order, -1, -1):
            keys, diff, ctx_keys, ctx_diff = self.orders[n]
            c = code % (BASE ** (n + 1)) if n < order else code
            pos = np.searchsorted(keys, c)
            pos[pos == len(keys)] = 0
            hit = keys[pos] == c if len(keys) else np.zeros(len(c), dtype=bool)
            total += float(np.clip(acc[hit] + diff[pos[hit]], -clip, clip).sum())
            miss = ~hit
            if not miss.any():
                break
            code, acc, c = code[miss], acc[miss], c[miss]
            ctx = c // BASE if n else np.zeros(len(c), dtype=np.int64)
            cpos = np.searchsorted(ctx_keys, ctx)
            cpos[cpos == len(ctx_keys)] = 0
            ok = ctx_keys[cpos] == ctx if len(ctx_keys) else np.zeros(len(c), dtype=bool)
            acc[ok] += ctx_diff[cpos[ok]]
        else:
            total += float(np.clip(acc, -clip, clip).sum())      # unseen at every order
        count = text.characters if denominator == "all" else len(data)
        return total / count * (len(data) / (len(data) + prior))

    def nbytes(self) -> int:
        return sum(a.nbytes for entry in self.orders for a in entry)

    def astype(self, dtype) -> "Tables":
        return Tables(self.order, [(g, d.astype(dtype), c, a.astype(dtype))
                                   for g, d, c, a in self.orders])

    # -- the file (definitions.py's chars.npz) -------------------------------------------
    def to_bytes(self) -> bytes:
        """An .npz of g<n>, d<n>, c<n>, a<n> (int64 codes, float32 log-ratios); fixed
        member times, so the same tables give the same bytes."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for n, (g, d, c, a) in enumerate(self.orders):
                for name, array in (("g", g.astype("<i8")), ("d", d.astype("<f4")),
                                    ("c", c.astype("<i8")), ("a", a.astype("<f4"))):
                    member = io.BytesIO()
                    np.lib.format.write_array(member, np.ascontiguousarray(array),
                                              allow_pickle=False)
                    info = zipfile.ZipInfo(f"{name}{n}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    archive.writestr(info, member.getvalue())
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, order: int) -> "Tables":
        """The tables of `to_bytes`; ValueError naming what is wrong (definitions.py rule 1).
        Bounded: the members' declared sizes (MAX_TABLE_BYTES) and each .npy header's dtype
        and shape are checked before a member is inflated or an array allocated; no pickle."""
        expected = {f"{k}{n}" for n in range(order + 1) for k in "gdca"}
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                infos = archive.infolist()
                names = [info.filename.removesuffix(".npy") for info in infos]
                if (sorted(names) != sorted(expected)
                        or any(not info.filename.endswith(".npy") for info in infos)):
                    raise ValueError(f"holds {', '.join(sorted(names)) or 'nothing'}, not the "
                                     f"tables of order {order} (g, d, c, a 0..{order})")
                declared = sum(info.file_size for info in infos)
                if declared > MAX_TABLE_BYTES:
                    raise ValueError(f"unpacks to {declared} bytes, more than the "
                                     f"{MAX_TABLE_BYTES} a set's tables may hold")
                # each member read through ZipExtFile to its declared size at most, so a
                # member that understates its size is cut there (and refused) instead of
                # inflating whole before its CRC check (review24d R1); bzip2 and lzma
                # members, which nothing here writes, are refused
                if any(info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
                       for info in infos):
                    raise ValueError("members must be stored or deflated")
                arrays = {}
                for name, info in zip(names, infos):
                    with archive.open(info) as member:
                        arrays[name] = _npy(name, member.read(info.file_size))
        except ValueError:
            raise
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError,
                NotImplementedError, MemoryError) as exc:
            raise ValueError(f"not a table archive ({type(exc).__name__}: {exc})") from None
        orders = []
        for n in range(order + 1):
            g, d, c, a = (arrays[f"{k}{n}"] for k in "gdca")
            for name, codes, limit in ((f"g{n}", g, BASE ** (n + 1)), (f"c{n}", c, BASE ** n)):
                if codes.dtype != np.int64 or codes.ndim != 1:
                    raise ValueError(f"{name} must be a list of 64-bit codes")
                if len(codes) and (codes[0] < 0 or codes[-1] >= limit
                                   or not (np.diff(codes) > 0).all()):
                    raise ValueError(f"{name} must be sorted codes from 0 to {limit - 1}")
            for name, values, codes in ((f"d{n}", d, g), (f"a{n}", a, c)):
                if values.dtype != np.float32 or values.shape != codes.shape:
                    raise ValueError(f"{name} must be one float32 per code")
                if not np.isfinite(values).all():
                    raise ValueError(f"{name} must be finite numbers")
            orders.append((g, d, c, a))
        return cls(order, orders)


def _npy(name: str, member: bytes) -> np.ndarray:
    """One member's array: a 1-d little-endian int64 (g, c) or float32 (d, a) .npy whose
    header's shape is what the member holds, read without pickle."""
    want = np.dtype("<i8") if name[0] in "gc" else np.dtype("<f4")
    what = "a list of 64-bit codes" if name[0] in "gc" else "one float32 per code"
    stream = io.BytesIO(member)
    try:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format {version}")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _fortran_order, dtype = read_header(stream)
    except (ValueError, TypeError, SyntaxError, EOFError) as exc:
        raise ValueError(f"{name} is not array data ({exc})") from None
    if dtype != want or len(shape) != 1:
        raise ValueError(f"{name} must be {what} (dtype {dtype}, shape {shape})")
    if shape[0] * want.itemsize != len(member) - stream.tell():
        raise ValueError(f"{name}'s header declares {shape[0]} values, not the "
                         f"{len(member) - stream.tell()} bytes it holds")
    stream.seek(0)
    array = np.lib.format.read_array(stream, allow_pickle=False)
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name} is not array data")
    return array


def train(pairs, order: int) -> Tables:
    """Rules 2-3: the tables of the spam and ham models of (CharText or bytes, is_spam)
    pairs, in float64 (the file stores float32)."""
    streams = {True: [], False: []}
    for text, is_spam in pairs:
        data = text.data if isinstance(text, CharText) else text
        if data:
            streams[bool(is_spam)].append(_codes(data, order))
    counted = {}
    for label, parts in streams.items():
        code = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        counted[label] = [np.unique(code % (BASE ** (n + 1)), return_counts=True)
                          for n in range(order + 1)]
    full = {True: [], False: []}          # per order: (keys, log P, ctx keys, log alpha)
    orders = []
    for n in range(order + 1):
        keys = np.union1d(counted[True][n][0], counted[False][n][0]).astype(np.int64)
        ctx_keys = np.unique(keys // BASE) if n else np.zeros(1, dtype=np.int64)
        ctx_of = np.searchsorted(ctx_keys, keys // BASE) if n else np.zeros(len(keys), int)
        entry = {}
        for label in (True, False):
            own, count = counted[label][n]
            g = np.zeros(len(keys))
            g[np.searchsorted(keys, own)] = count
            ch = np.bincount(ctx_of, weights=g, minlength=len(ctx_keys))
            th = np.bincount(ctx_of, weights=(g > 0).astype(float), minlength=len(ctx_keys))
            lower = (np.full(len(keys), math.log(1 / 256)) if n == 0
                     else _log_lower(full[label], keys, n))
            seen = ch[ctx_of] > 0
            with np.errstate(divide="ignore"):
                p = np.where(seen, (g + th[ctx_of] * np.exp(lower))
                             / np.where(seen, ch[ctx_of] + th[ctx_of], 1.0), np.exp(lower))
                alpha = np.where(ch > 0, th / np.where(ch > 0, ch + th, 1.0), 1.0)
            entry[label] = (np.log(p), np.log(alpha))
            full[label].append((keys, entry[label][0], ctx_keys, entry[label][1]))
        orders.append((keys, entry[True][0] - entry[False][0], ctx_keys,
                       entry[True][1] - entry[False][1]))
    return Tables(order, orders)


def _log_lower(full, keys, n):
    """log P under one model of each order-n gram's byte in its (n-1)-byte context, by
    back-off through the lower orders' full values (`train`)."""
    lower = keys % (BASE ** n)
    acc = np.zeros(len(keys))
    todo = np.ones(len(keys), dtype=bool)
    out = np.zeros(len(keys))
    for k in range(n - 1, -1, -1):
        g_keys, logp, c_keys, log_alpha = full[k]
        code = lower % (BASE ** (k + 1))
        pos = np.clip(np.searchsorted(g_keys, code), 0, max(len(g_keys) - 1, 0))
        hit = todo & (g_keys[pos] == code) if len(g_keys) else np.zeros(len(keys), bool)
        out[hit] = acc[hit] + logp[pos[hit]]
        todo &= ~hit
        if k:
            ctx = code // BASE
            cpos = np.clip(np.searchsorted(c_keys, ctx), 0, len(c_keys) - 1)
            ok = todo & (c_keys[cpos] == ctx)
            acc[ok] += log_alpha[cpos[ok]]
        else:
            acc[todo] += log_alpha[0]
    out[todo] = acc[todo] + math.log(1 / 256)
    return out
