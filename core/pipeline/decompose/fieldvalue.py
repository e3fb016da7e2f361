"""One header field value read in linear time: RFC 2047 encoded words and RFC 2045 / RFC 2231
parameters, with the results of Python's email package.

mime.py reads these values with the email package, whose readers are quadratic on hostile
input: `email.message._parseparam` recounts the quotes from the start of the value for each
";" (CPython gh-136063, open for 3.11), and `email.header.decode_header` scans to the end of
the line for each "=?cs?q?" that is never closed by "?=" (and drops words from, and appends
to, lists and bytes one at a time). A 40 KB header cost seconds, per MIME part for the
parameters (x4-cost findings 5 and 6).

Rules
    1. Same results as the email package, for every input: only the splitting is rewritten,
       so a real message reads exactly as before (RFC 2231 continuations, the lenient
       readings of broken mail and the exceptions mime.py turns into defects all stay the
       email package's). That is why the values are not cut at a limit instead: a cut
       changes what a long but honest value (an RFC 2231 file name in 40 segments) means,
       and a value just under any limit would still cost its square, per part.
       One departure: the charset of an encoded word or of an RFC 2231 value is read as mail
       readers read it (charsets.py), not by Python's registry, which does not know
       "x-sjis" or "windows-31j" and reads "iso-8859-1" and "gb2312" more narrowly than
       readers do: a subject line or a file name so labelled was skipped (i18n finding 2).
    2. Linear: each character is looked at a bounded number of times
       (tests/unit/pipeline/test_headers_cost.py reads values the email package takes
       minutes on, and compares the results with the email package's on small ones).
    3. Never used for anything but reading: nothing here builds or re-serialises a header.
    4. Two readings of encoded words. The legacy one (`decode_words_text`, the email
       package's `make_header`) puts a space where an encoded word meets text without one;
       mail readers and Python's `email.policy.default` do not (`decode_words_as_shown`):
       `zqx=?UTF-8?Q?forbid?=` is "zqx forbid" to the one and "zqxforbid" to the others,
       and `filename="=?UTF-8?Q?run.v?=bs"` "run.v bs" against "run.vbs", past `*.vbs`
       (content18 A1, A2). Both decode every word alike and differ only in those spaces
       (and in the white space between a us-ascii word and another encoded word, which
       the legacy reading keeps as one space); a value without such a meeting reads the
       same both ways. The shown reading is what events and the checks see first; the
       legacy one is matched too where it differs (content_fields.decode_word_readings).
       They differ in decoding one way too: the shown reading reads each word as a reader
       shows a text so labelled (charsets.py rule 5): bytes its charset does not hold are
       each U+FFFD, not the end of the whole value's decoding (one bad byte in a UTF-8
       word left the value as written, past every rule: i18n19 A2), and a us-ascii word
       holding UTF-8 reads UTF-8, as such a text part does (i18n19 B6). The legacy
       reading fails on the one and reads the other as windows-1252, as before.
"""

from __future__ import annotations

import binascii
import email.base64mime
import email.quoprimime
import re
from email import utils
from email.charset import UNKNOWN8BIT, Charset
from email.errors import HeaderParseError
from email.message import Message

from core.pipeline.decompose import charsets

__all__ = ["ParamMessage", "split_params", "decode_header", "decode_words_text",
           "decode_words_as_shown", "collapse_rfc2231_value"]


# --- RFC 2045 parameters ---------------------------------------------------------------------

_QUOTE_OR_SEMICOLON = re.compile(r'[";]')
_CLOSING_QUOTE = re.compile(r'(?<!\\)"')         # a quote not after a backslash


def split_params(value: str) -> list[str]:
    """`email.message._parseparam(value)` in one pass: the value split at each ";" that stands
    outside a quoted string (a quote after a backslash does not count), each piece stripped,
    with "name=" lower-cased and the blanks around "=" removed. An open quote runs to the end."""
    text = ";" + value
    size = len(text)
    pieces: list[str] = []
    start = 1                                 # after the ";" that ends the previous piece
    while True:
        pos, end = start, size
        while pos < size:
            mark = _QUOTE_OR_SEMICOLON.search(text, pos)
            if mark is None:
                break
            if mark[0] == ";":
                end = mark.start()
                break
            pos = mark.end()
            if text[mark.start() - 1] == "\\":            # _parseparam's count('\\"')
                continue
            closing = _CLOSING_QUOTE.search(text, pos)     # the quoted string, in one search
            if closing is None:
                break
            pos = closing.end()
        piece = text[start:end]
        if "=" in piece:
            name, _, rest = piece.partition("=")
            piece = name.strip().lower() + "=" + rest.strip()
        pieces.append(piece.strip())
        if end >= size:
            return pieces
        start = end + 1


class ParamMessage(Message):
    """A `Message` whose parameter readers (get_param, get_params, get_content_charset,
    get_filename, get_boundary) split the value with `split_params`; what they do with the
    pieces (RFC 2231, unquoting) is the email package's own (rule 1)."""

    def _get_params_preserve(self, failobj, header):
        # email.message.Message._get_params_preserve (3.11), with split_params for
        # _parseparam; every parameter reader goes through here
        missing = object()
        value = self.get(header, missing)
        if value is missing:
            return failobj
        params = []
        for piece in split_params(str(value)):
            name, sep, val = piece.partition("=")
            params.append((name.strip(), val.strip()) if sep else (piece.strip(), ""))
        return utils.decode_params(params)

    def get_filename(self, failobj=None):
        # email.message.Message.get_filename (3.11), with collapse_rfc2231_value (rule 1)
        missing = object()
        filename = self.get_param("filename", missing, "content-disposition")
        if filename is missing:
            filename = self.get_param("name", missing, "content-type")
        if filename is missing:
            return failobj
        return collapse_rfc2231_value(filename).strip()


def collapse_rfc2231_value(value) -> str:
    """`email.utils.collapse_rfc2231_value(value)`, the value's charset read as readers read
    it (rule 1); a charset nobody knows leaves the text as it was written."""
    if not isinstance(value, tuple) or len(value) != 3:
        return utils.unquote(value)
    charset, _language, text = value
    try:
        return charsets.decode(bytes(text, "raw-unicode-escape"), charset or "us-ascii",
                               "replace")
    except LookupError:
        return utils.unquote(text)


# --- RFC 2047 encoded words ------------------------------------------------------------------

# email.header.ecre up to the encoded text: "=?" charset "?" q|b "?". The charset runs to the
# first "?" (the pattern's [^?]*? can stop nowhere else), and may hold a line break.
_WORD_OPENING = re.compile(r"=\?([^?]*+)\?([qQbB])\?")


def _words(text: str):
    """(start, end, charset, encoding, encoded) of each match of email.header.ecre in `text`,
    as `ecre.finditer(text)` gives them: the encoded text is the shortest run up to "?=" that
    holds no "\\n". Linear: the openings found have non-decreasing ends, so the next "?=" and
    the next "\\n" are looked for only past the last ones found."""
    size = len(text)
    close = newline = -1                     # the next "?=" / "\n" found (size: none left)
    pos = 0
    while True:
        opening = _WORD_OPENING.search(text, pos)
        if opening is None:
            return
        end = opening.end()
        if close < end:
            found = text.find("?=", end)
            close = size if found < 0 else found
        if newline < end:
            found = text.find("\n", end)
            newline = size if found < 0 else found
        if close >= size:                        # no "?=" after this opening: none later
            return
        if close < newline:
            yield opening.start(), close + 2, opening[1], opening[2], text[end:close]
            pos = close + 2
        else:
            pos = opening.start() + 1


def decode_header(header: str) -> list[tuple[bytes | str, str | None]]:
    """`email.header.decode_header(header)` for a str, in linear time (same pairs, same
    HeaderParseError on bad base64)."""
    return [(word, charset) for word, charset, _ in _decoded_words(header)]


def _decoded_words(header: str) -> list[tuple[bytes | str, str | None, bool]]:
    """decode_header's pairs, each with whether it begins a line after the first (rule 4:
    where the value was folded, the white space of the fold stands before it)."""
    if next(_words(header), None) is None:
        return [(header, None, False)]
    words: list[tuple[str, str | None, str | None, bool]] = []
    for number, line in enumerate(header.splitlines()):
        pos = 0
        for start, end, charset, encoding, encoded in _words(line):
            unencoded = line[pos:start]
            if pos == 0:
                unencoded = unencoded.lstrip()
            if unencoded:
                words.append((unencoded, None, None, number > 0 and pos == 0))
            words.append((encoded, encoding.lower(), charset.lower(),
                          number > 0 and pos == 0 and not unencoded))
            pos = end
        unencoded = line[pos:].lstrip() if pos == 0 else line[pos:]
        if unencoded:
            words.append((unencoded, None, None, number > 0 and pos == 0))
    # white space between two encoded words goes
    kept = [w for n, w in enumerate(words)
            if not (0 < n < len(words) - 1 and words[n + 1][1] and words[n - 1][1]
                    and w[0].isspace())]
    decoded: list[tuple[bytes, str | None, bool]] = []
    for encoded, encoding, charset, folded in kept:
        if encoding is None:
            word = encoded
        elif encoding == "q":
            word = email.quoprimime.header_decode(encoded)
        else:
            paderr = len(encoded) % 4                  # Postel's law: add missing padding
            if paderr:
                encoded += "==="[:4 - paderr]
            try:
                word = email.base64mime.decode(encoded)
            except binascii.Error:
                raise HeaderParseError("Base64 decoding error") from None
        if isinstance(word, str):
            word = bytes(word, "raw-unicode-escape")
        decoded.append((word, charset, folded))
    collapsed: list[tuple[bytes, str | None, bool]] = []
    run: list[bytes] = []
    for index, (word, charset, folded) in enumerate(decoded):
        if not run:
            run_folded = folded
        run.append(word)
        if index + 1 == len(decoded) or decoded[index + 1][1] != charset:
            collapsed.append(((b" " if charset is None else b"").join(run), charset,
                              run_folded))
            run = []
    return collapsed


_US_ASCII = Charset("us-ascii")


def decode_words_text(value: str) -> str:
    """`str(make_header(decode_header(value)))` in linear time, each word's charset read as
    readers read it (rule 1); raises as that does: LookupError for a charset nobody knows,
    UnicodeDecodeError for bytes it does not hold. What make_header does besides decoding
    (checking that the text could be encoded again for output) is left out: nothing here
    writes a header (rule 3). This is the legacy reading (rule 4); `decode_words_as_shown`
    is the one mail readers show."""
    # email.header.Header.append then _normalize: runs of one charset joined by a space
    runs: list[tuple[list[str], Charset]] = []
    for text, charset, _encoded, _folded in _decoded_texts(value):
        if runs and runs[-1][1] == charset:
            runs[-1][0].append(text)
        else:
            runs.append(([text], charset))
    # email.header.Header.__str__: a space where an encoded run meets an unencoded one
    # without one
    out: list[str] = []
    last, last_spaced = None, False
    for texts, charset in runs:
        text = " ".join(texts)
        if out:
            if last not in (None, "us-ascii"):
                if charset in (None, "us-ascii") and not (text and _nonctext(text[0])):
                    out.append(" ")
                    charset = None
            elif charset not in (None, "us-ascii") and not last_spaced:
                out.append(" ")
        last_spaced = bool(text) and _nonctext(text[-1])
        last = charset
        out.append(text)
    return "".join(out)


def decode_words_as_shown(value: str) -> str:
    """The text mail readers show for `value` (rule 4): each word read as a reader shows a
    text in its charset (charsets.decode_as_read; raising as `decode_words_text` does for a
    charset nobody knows and for bad base64, not for bytes the charset does not hold),
    joined as written — no space
    where an encoded word meets text without one (`zqx=?UTF-8?Q?forbid?=` is "zqxforbid",
    `=?UTF-8?Q?run.v?=bs` "run.vbs"), and none for the white space between two encoded
    words, whatever their charsets; a fold between an encoded word and text reads as one
    space. These are the results of Python's `email.policy.default`."""
    out: list[str] = []
    last_encoded = None
    for text, _charset, encoded, folded in _decoded_texts(value, as_shown=True):
        if out and folded and not (encoded and last_encoded):
            out.append(" ")
        out.append(text)
        last_encoded = encoded
    return "".join(out)


def _decoded_texts(value: str, as_shown: bool = False):
    """(text, Charset, is encoded, folded) of each of `decode_header(value)`'s pairs,
    decoded (text outside encoded words: us-ascii); `as_shown`: each word as a reader shows
    it (rule 4), else as the email package decodes it."""
    for word, label, folded in _decoded_words(value):
        charset = _US_ASCII if label is None else Charset(label)
        if isinstance(word, str):
            text = word
        elif label is None:
            text = word.decode("us-ascii")
        elif charset.input_codec == UNKNOWN8BIT:
            text = word.decode("us-ascii", "replace")
        elif as_shown:
            if charsets.encoding(label) is None:
                raise LookupError(f"unknown charset {label!r}")
            text = charsets.decode_as_read(word, label)[0]
        else:
            text = charsets.decode(word, label)
        yield text, charset, label is not None, folded


def _nonctext(char: str) -> bool:
    return char.isspace() or char in ("(", ")", "\\")
