"""Raw MIME on bytes, with offsets (RFC 2045-2049, RFC 5322).

The pipeline must know where every part lies in the file, so that rewrite.py can cut one
part out and leave the others byte-identical; Python's email package re-serialises instead.
So: headers and multipart boundaries are found here on the raw bytes; the email package is
used only to read one header value (parameters, RFC 2231 continuations, RFC 2047 words), in
content_fields.py, which reads a part's Content-Type, Content-Transfer-Encoding and
Content-Disposition fields and keeps the rules on their repeats and declared file names.

Rules
    1. Nothing here raises on hostile input: every oddity becomes a defect string and the
       parsing goes on with the most useful reading (Postel, as mail parsers must).
    2. Offsets are into the buffer given. A line ends at CRLF, bare LF or bare CR: the spool
       stores what was received (the listener keeps a bare CR as content), but the delivery
       client turns every bare CR and LF into CRLF (core/smtp/client.py rule 4) and Python's
       email parser splits lines at each of them too, so that is what the next hop and the
       reader see — and so what headers and delimiter lines are found by here.
    3. A delimiter line owns the line break before it (RFC 2046 §5.1.1), so a part's bytes
       end before that break, and cutting (break + delimiter line + part) removes the part
       and leaves the multipart well formed.
    4. A header block (of the message, of a MIME part, of an attached message) ends at the
       blank line, or else at the first line that is neither a field nor a continuation:
       that line starts the body, as it does for the next hop (Postfix's cleanup inserts the
       missing blank line there) and for Python's email parser
       (MissingHeaderBodySeparatorDefect). Where those two readers differ, the line is read
       as header, which keeps the MIME structure it announces in view: a field name with
       blanks before the colon (Postfix), a line starting with a colon, and a "From " line
       followed by more header lines (Python; a "From " line followed by anything else
       starts the body for both). A line of blanks is a continuation for both. The first
       line may be an mbox "From " line.
    5. Finding the delimiter lines of every multipart in a buffer costs a few times its size,
       however deep the multiparts nest: searching the rest of the buffer at each level cost
       100 times its size at the nesting limit (hostile-mime finding 5). One DelimiterSearch
       serves the buffer: it searches each multipart's range directly until those searches
       add up to DIRECT_SEARCH_FACTOR times the buffer, then indexes every line starting
       with "--" once and answers from that. Both give exactly the matches of the one
       delimiter pattern; `octets` counts the work, for the decomposer's budget.
    6. Header octets no RFC 2047 word declares (a raw 8-bit Subject, file name or display
       name, as many Japanese, Chinese, Korean and Russian mailers write them) are read as
       mail readers read them (`read_undeclared`; i18n19 A1): raw ISO-2022-JP (7-bit, its
       escape sequences) as ISO-2022-JP, as Thunderbird does; else UTF-8 when they are;
       else in the message's charset (`message_charset`: the top part's Content-Type
       charset, else the first text part's), as Thunderbird and Outlook do; else
       Latin-1. `split_header` reads them the older way, UTF-8 else Latin-1 (`header_text`,
       the reading the heuristic model learned on), and keeps their octets
       (`HeaderBlock.undeclared`) for `HeaderBlock.read_fields`, since the message's
       charset may be declared further on. The SMTP listener, on its event loop, reads the
       same charset in the message's first octets at a bounded cost (`head_charset`: the
       Content-Type fields only, MAX_HEAD_CHARSET_OCTETS of them).
"""

from __future__ import annotations

import binascii
import heapq
import re
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice

from core.pipeline.decompose import charsets
from core.pipeline.decompose.content_fields import (TRANSFER_DECODINGS, content_info,
                                                    decode_words, transfer_decoding)
from core.scan.unpackers import name_text

__all__ = ["HeaderBlock", "split_header", "HeadFacts", "head_facts", "find_parts",
           "DelimiterSearch", "ChildSpan", "decode_transfer", "header_text", "read_undeclared",
           "message_charset", "head_charset"]

MAX_HEADER_FIELDS_KEPT = 2000    # of a part's header, kept for the view (the rest: defect)
# ...except these, kept wherever they stand: past the cap they would still tell the receiving
# side how to read the message and who sent it, so 2000 filler fields in front of a
# Content-Type would hide its attachments from every check (and a Subject from its rules).
FIELDS_ALWAYS_KEPT = frozenset({
    "content-type", "content-transfer-encoding", "content-disposition", "mime-version",
    "subject", "from", "sender", "reply-to", "to", "cc", "return-path",
    # what marks an automatic reply (core/pipeline/run.py is_automatic): past the cap it
    # would teach the auto-generated whitelist
    "auto-submitted", "precedence", "x-autoreply", "x-autorespond",
    # the gateway's own marks, a sender's forgery of which is removed (antispam handling.py
    # rule 5): past the cap a forged "X-Bulk: 0" would reach the mailbox
    "x-bulk", "x-mailmoat-folder", "x-mailmoat-language"})

# Rule 2: the line ends the relay (core/smtp/client.py rule 4) and Python's email parser know.
_LINE_END = re.compile(rb"\r\n|\r|\n")
# Rule 4. A field: RFC 5322 §2.2 ftext (printable US-ASCII except ":") up to the colon, also
# with blanks before it (obs-optional, RFC 5322 §4.5.3; Postfix reads it) or with no name at
# all (Python's email parser reads ":x" as a header line without a name).
_FIELD = re.compile(rb"[\x21-\x39\x3b-\x7e]*[ \t]*:")
# The first line of a header block may be an mbox "From " line (Python's unixfrom; Postfix's
# smtpd makes ">From " and "From " there an X-Mailbox-Line field).
_MBOX_FROM = re.compile(rb">*From ")


@dataclass
class HeaderBlock:
    fields: list[tuple[str, str]]   # (name, unfolded value as text), in order; undeclared
                                    # octets read UTF-8 else Latin-1 (`header_text`, rule 6)
    body_start: int                 # offset of the body: after the blank line, or the first
                                    # line that is not a field (rule 4)
    defects: list[str]
    # index in `fields` -> the unfolded octets of that value, for each value a reader may
    # read otherwise (rule 6: not UTF-8, or ISO-2022-JP escapes)
    undeclared: dict[int, bytes] = field(default_factory=dict)

    def read_fields(self, charset: str | None) -> list[tuple[str, str]]:
        """`fields` as mail readers read them in a message of `charset` (rule 6)."""
        if not self.undeclared:
            return self.fields
        return [(name, read_undeclared(self.undeclared[n], charset).strip()
                 if n in self.undeclared else value)
                for n, (name, value) in enumerate(self.fields)]


def header_text(raw: bytes) -> str:
    """Header octets as text: UTF-8 when they are, else Latin-1 — the rule for a name in an
    archive too (core/scan/unpackers name_text), which this is. The older reading of
    undeclared octets (rule 6), the one the heuristic model learned on."""
    return name_text(raw)


# ISO-2022-JP's escape sequences (RFC 1468): to JIS X 0208 (ESC $ @, ESC $ B), JIS X 0201
# Roman or katakana (ESC ( J, ESC ( I) and back to ASCII (ESC ( B).
_ISO_2022_JP_ESCAPE = re.compile(rb"\x1b(?:\$[@B]|\([BJI])")


def read_undeclared(raw: bytes, charset: str | None) -> str:
    """Header octets no encoded word declares as mail readers read them in a message of
    `charset` (rule 6; `message_charset`, None for none declared): ISO-2022-JP when they
    hold its escape sequences and read as it; else UTF-8 when they are; else in `charset`
    when readers know it (charsets.decode_as_read: UTF-8 with one bad byte is UTF-8 with
    one U+FFFD, i18n19 A2); else Latin-1 (name_text)."""
    if _ISO_2022_JP_ESCAPE.search(raw):
        try:
            return charsets.decode(raw, "iso-2022-jp")
        except UnicodeDecodeError:
            pass
    if charset is None or charsets.encoding(charset) is None:
        return name_text(raw)
    return name_text(raw, lambda octets: charsets.decode_as_read(octets, charset)[0])


def _is_undeclared(raw: bytes) -> bool:
    """Whether a reader may read `raw` otherwise than `header_text` (rule 6)."""
    if raw.isascii():
        return b"\x1b" in raw and _ISO_2022_JP_ESCAPE.search(raw) is not None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return _ISO_2022_JP_ESCAPE.search(raw) is not None


def _line(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(end of the line's text, start of the next line) for the line at `pos` (rule 2)."""
    brk = _LINE_END.search(buf, pos, end)
    return (brk.start(), brk.end()) if brk else (end, end)


def _header_goes_on(buf: bytes, pos: int, end: int) -> bool:
    """Whether the line at `pos` would still be read as header by Python's email parser
    (its `headerRE`: a field, a continuation or a "From " line)."""
    if pos >= end:
        return False
    line = buf[pos:_line(buf, pos, end)[0]]
    return (line[:1] in (b" ", b"\t") or line.startswith(b"From ")
            or _FIELD.match(line) is not None)


def split_header(buf: bytes, start: int, end: int) -> HeaderBlock:
    """The header block at buf[start:end] and where its body starts (rule 4)."""
    defects: list[str] = []
    fields: list[tuple[str, str]] = []
    undeclared: dict[int, bytes] = {}
    name: str | None = None
    value: list[bytes] = []
    dropped = 0
    body_start: int | None = None
    pos = start
    while pos < end:
        text_end, next_pos = _line(buf, pos, end)
        line = buf[pos:text_end]
        if not line:                                    # the blank line
            body_start = next_pos
            break
        if line[:1] in (b" ", b"\t"):                  # a fold (a line of blanks too)
            if name is None:
                defects.append("continuation line before the first header")
            else:
                value.append(line)
            pos = next_pos
            continue
        if name is not None:
            dropped += _keep(fields, undeclared, name, value)
            name = None
        field = _FIELD.match(line)
        if field is not None:
            if b"\x00" in line:
                defects.append("NUL in the header")
            if field.end() == 1:                         # ":value", Python's reading
                defects.append("header line without a field name")
            else:
                name = header_text(line[:field.end() - 1].rstrip(b" \t"))
                value = [line[field.end():]]
        elif _MBOX_FROM.match(line) and (pos == start or _header_goes_on(buf, next_pos, end)):
            # an mbox separator line, tolerated at the top and, followed by more header,
            # below fields a relay put on top of a message taken from a mailbox (this
            # gateway's own Received field does): not a defect there either
            pass
        else:
            body_start = pos
            defects.append("no blank line after the header: the body starts at a line "
                           "that is not a header field")
            break
        pos = next_pos
    if name is not None:
        dropped += _keep(fields, undeclared, name, value)
    if body_start is None:
        body_start = end
        if start < end:                    # an empty part (RFC 2046 §5.1.1) is no defect
            defects.append("no blank line after the header")
    if dropped:
        defects.append(f"{dropped} header fields past {MAX_HEADER_FIELDS_KEPT} not read")
    return HeaderBlock(fields, body_start, defects, undeclared)


def _keep(fields: list[tuple[str, str]], undeclared: dict[int, bytes], name: str,
          value: list[bytes]) -> int:
    """Append the field unless the cap says not to; 1 when it was left out."""
    if len(fields) < MAX_HEADER_FIELDS_KEPT or name.lower() in FIELDS_ALWAYS_KEPT:
        raw = b" ".join(part.strip(b" \t") for part in value)
        if _is_undeclared(raw):
            undeclared[len(fields)] = raw
        fields.append((name, header_text(raw).strip()))
        return 0
    return 1


@dataclass
class HeadFacts:
    subject: str        # the first Subject, decoded as view.subject is; "" when none
    received: int       # Received fields (hops)


# Searched in a header whose every CR has become LF (head_facts): a line end is one LF, or
# two for a CRLF, since two line ends in a row would have ended the header. Literal first
# characters and no (?i), so the engine skips to candidates at C speed.
_RECEIVED_FIELD = re.compile(rb"\n[Rr][Ee][Cc][Ee][Ii][Vv][Ee][Dd][ \t]*:")
_SUBJECT_FIELD = re.compile(rb"\n[Ss][Uu][Bb][Jj][Ee][Cc][Tt][ \t]*:[^\n]*(?:\n\n?[ \t][^\n]*)*")
_CONTENT_TYPE_FIELD = re.compile(rb"\n[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Tt][Yy][Pp][Ee][ \t]*:"
                                 rb"[^\n]*(?:\n\n?[ \t][^\n]*)*")
_CR_TO_LF = bytes.maketrans(b"\r", b"\n")
# In the same search copy, the line end before a line that is neither a field nor a
# continuation (rule 4: it starts the body; an mbox "From " line is taken as header, as
# split_header mostly does). Possessive: the LF of a CRLF is no line of its own.
_NOT_A_FIELD_LINE = re.compile(rb"\n\n?+(?![ \t]|[\x21-\x39\x3b-\x7e]*[ \t]*:|>*From )")


# Two line ends in a row (rule 2; CR LF is one line end) are LF LF, LF CR or CR CR.
_LF_THEN_LINE_END = re.compile(rb"\n[\r\n]")
_CR_CR = re.compile(rb"\r\r")


def _header_end(head: bytes, start: int = 0, end: int | None = None) -> int:
    """Where the line end before the blank line that ends the header at head[start:end]
    starts (or `end`). Two literal-first searches: a pattern of all three cost three times
    as much."""
    end = len(head) if end is None else end
    if head[start:start + 1] in (b"\r", b"\n"):
        return start                        # the first line is blank: there is no header
    found = _LF_THEN_LINE_END.search(head, start, end)
    stop = found.start() if found is not None else end
    found = _CR_CR.search(head, start, stop)
    return found.start() if found is not None else stop


def _found_field(header: bytes, found: re.Match[bytes]) -> HeaderBlock:
    """The field a head_facts search found in `header` (its search copy has every CR made
    LF, octet for octet) read by `split_header`, as the decomposer reads it."""
    field = header[found.start() + 1:found.end()] + b"\r\n\r\n"
    return split_header(field, 0, len(field))


def head_facts(head: bytes) -> HeadFacts:
    """What the SMTP listener reads of a message it receives, from the header block at the
    start of `head` (the message's first octets; a header longer than `head` is read as far
    as it goes): its Subject for the events and its hop count for loop detection. It runs on
    the listener's event loop for every message, so the block is searched by regular
    expressions (15 µs a message on the corpus, against 90 µs for `split_header` over the
    whole block); the Subject field found is read by `split_header` and `decode_words`, as
    the decomposer reads it. Of 4,750 corpus headers all read alike but 3 whose first line
    is no header field (a BOM, BSMTP): the decomposer reads them as all body, this finds
    their Subject and Received fields below it. A line ends at CRLF, LF or CR (rule 2): the
    search runs on a copy with every CR made LF (one C pass, octet for octet, so offsets
    stay), cheaper than patterns that look for each kind of line end.

    A Subject with undeclared octets (rule 6) is read in the message's charset as far as
    `head_charset` finds it in `head`: the Content-Type fields only, found the same way,
    MAX_HEAD_CHARSET_OCTETS of them at most. Such a Subject costs about 0.05 ms more when
    the top part declares the charset, 0.15 ms through a multipart, about 1 ms at most on a
    hostile head; `message_charset` (split_header and content_info of every part looked
    at) took 45 to 140 ms over a hostile 64 KiB head (review19 R1). Of the 4,520 corpus
    messages, head_charset finds the charset message_charset finds in all but one, whose
    header is longer than 64 KiB. Where `head` ends before the only part that declares a
    charset, or a hostile head has longer Content-Type fields, the listener's events
    (accepted, rejected) show the older reading and the pipeline's events the message's."""
    header = b"\n" + head[:_header_end(head)]        # every field after a line break
    searched = header.translate(_CR_TO_LF)
    received = len(_RECEIVED_FIELD.findall(searched))
    found = _SUBJECT_FIELD.search(searched)
    subject = ""
    if found is not None:
        block = _found_field(header, found)
        if block.fields:
            charset = head_charset(head) if block.undeclared else None    # rule 6
            subject = decode_words(block.read_fields(charset)[0][1])[0]
    return HeadFacts(subject, received)


MAX_CHARSET_PARTS = 8       # the parts `message_charset` looks at, at most (a text in
                            # multipart/signed, mixed, alternative is the 4th)
# The octets of Content-Type fields `head_charset` reads, all parts together: the email
# package reads parameters at about 1 ms a KiB (fieldvalue.py), on the listener's event
# loop. Real ones take a few hundred: 70 for a multipart's, 40 for a text's.
MAX_HEAD_CHARSET_OCTETS = 1024


def message_charset(buf: bytes, start: int = 0, end: int | None = None,
                    search: DelimiterSearch | None = None) -> str | None:
    """The charset of the message in buf[start:end], which mail readers read its undeclared
    header octets in (rule 6): its top part's Content-Type charset, else that of the first
    text part (in pre-order, through its multiparts: an attached message is another message)
    that declares one; None for none. Looks at MAX_CHARSET_PARTS parts at most, its
    multiparts' delimiter lines found by `search` (the DelimiterSearch of `buf` for this
    use; rule 5 bounds the work); only asked where some header has undeclared octets."""
    def read(part_start: int, part_end: int, default_type: str):
        header = split_header(buf, part_start, part_end)
        return content_info(header.fields, default_type), header.body_start
    return _charset_of(buf, start, len(buf) if end is None else end, read,
                       search or DelimiterSearch(buf))


def head_charset(head: bytes) -> str | None:
    """`message_charset` as the SMTP listener reads it in the message's first octets
    (head_facts): each part's first Content-Type field found as head_facts finds a field,
    unless a line that is no field comes before it (the body starts there, rule 4), read
    by `split_header` and `content_info` while the fields read add up to at most
    MAX_HEAD_CHARSET_OCTETS (past them: None, the older reading). Delimiter lines are found
    by direct searches only, at C speed (one per multipart looked at, so at most
    MAX_CHARSET_PARTS times `head`): rule 5's index is built by Python, line by line."""
    budget = MAX_HEAD_CHARSET_OCTETS

    def read(part_start: int, part_end: int, default_type: str):
        nonlocal budget
        header_end = _header_end(head, part_start, part_end)
        header = b"\n" + head[part_start:header_end]
        searched = header.translate(_CR_TO_LF)
        found = _CONTENT_TYPE_FIELD.search(searched)
        if found is None:
            return content_info([], default_type), header_end
        stray = _NOT_A_FIELD_LINE.search(searched)      # its look-ahead reads the field
        if stray is not None and stray.start() < found.start():
            # the body starts above the field, which is text of the body (rule 4), as
            # message_charset reads it (review19 r4 C2)
            return content_info([], default_type), part_start + max(0, stray.start() - 1)
        budget -= found.end() - found.start() - 1
        if budget < 0:
            return None
        # delimiter lines are looked for from the end of the field: a line that is no field
        # (a delimiter line too) starts the body (rule 4), as for the decomposer
        return (content_info(_found_field(header, found).fields, default_type),
                part_start + found.end() - 1)
    return _charset_of(head, 0, len(head), read,
                       DelimiterSearch(head, direct_factor=MAX_CHARSET_PARTS))


def _charset_of(buf: bytes, start: int, end: int, read, search: DelimiterSearch
                ) -> str | None:
    """message_charset's walk; `read(start, end, default type)` gives a part's
    (ContentInfo, where its body starts), or None to stop (no charset)."""
    todo = [(start, end, "text/plain")]
    looked = 0
    while todo and looked < MAX_CHARSET_PARTS:
        start, end, default_type = todo.pop()
        looked += 1
        found = read(start, end, default_type)
        if found is None:
            return None
        info, body_start = found
        if info.charset and (looked == 1 or info.content_type.startswith("text/")):
            return info.charset
        if info.content_type.startswith("multipart/") and info.boundary:
            children, _closed = find_parts(buf, body_start, end, info.boundary, search,
                                           most=MAX_CHARSET_PARTS)
            child_type = ("message/rfc822" if info.content_type == "multipart/digest"
                          else "text/plain")
            todo += [(child.start, child.end, child_type) for child in reversed(children)]
    return None


@dataclass
class ChildSpan:
    start: int          # first byte of the child (its header)
    end: int            # end of the child (before the line break owned by the next delimiter)
    cut_start: int      # start of the line break + delimiter line before the child (rule 3)


def find_parts(buf: bytes, start: int, end: int, boundary: str,
               search: DelimiterSearch | None = None, most: int | None = None
               ) -> tuple[list[ChildSpan], bool]:
    """The children of a multipart body in buf[start:end], and whether the close delimiter
    was found. Delimiter lines start and end at any line break of rule 2. `search` is the
    DelimiterSearch of `buf` that all its multiparts share (rule 5); without it the range is
    searched directly. `most`: stop at that many children (the close delimiter not found)."""
    if search is None:
        search = DelimiterSearch(buf)
    children: list[ChildSpan] = []
    open_start: int | None = None
    open_cut = 0
    closed = False
    for match in search.matches(start, end, boundary):
        line_start = match.start()
        brk = 0
        if line_start > start:
            before = buf[line_start - 1:line_start]
            if before == b"\n":
                crlf = line_start - 2 >= start and buf[line_start - 2:line_start - 1] == b"\r"
                brk = 2 if crlf else 1
            elif before == b"\r":
                brk = 1
        if open_start is not None:
            children.append(ChildSpan(open_start, max(open_start, line_start - brk), open_cut))
            if len(children) == most:
                return children, False
        if match.group(1):
            closed = True
            open_start = None
            break
        open_start = match.end()
        open_cut = line_start - brk
    if open_start is not None:
        children.append(ChildSpan(open_start, end, open_cut))
    return children, closed


DIRECT_SEARCH_FACTOR = 2          # rule 5: direct searches of a buffer, in buffer sizes
# A buffer with more lines starting with "--" than one per this many octets is not indexed
# (the index takes about 40 octets a line while it is built): its multiparts are searched
# directly, under the decomposer's budget. Real mail is far sparser; a nest of multiparts
# with one-letter boundaries has about one such line per 30 octets.
INDEX_MIN_OCTETS_PER_LINE = 16
# a line starting with "--" (rule 2: at the start of the buffer or after CR or LF); the group
# is its text after "--" without the blanks that end it. The lookbehind follows the literal so
# that the engine skips from one "--" to the next at C speed.
_DASH_LINE = re.compile(rb"--(?<![^\r\n]--)([^\r\n]*[^\r\n \t]|)[ \t]*")


def _delimiter_pattern(marker: bytes) -> re.Pattern[bytes]:
    """A delimiter line of the boundary `marker` (RFC 2046 §5.1.1), with the close
    delimiter's "--" in group 1. It starts a line as _DASH_LINE does, with the boundary in the
    literal the engine skips to."""
    escaped = re.escape(marker)
    return re.compile(rb"--" + escaped + rb"(?<![^\r\n]--" + escaped + rb")(--)?[ \t]*"
                      rb"(?:\r\n|\r|\n|\Z)")


class DelimiterSearch:
    """The delimiter lines of the multiparts of one buffer (rule 5)."""

    def __init__(self, buf: bytes, direct_factor: float = DIRECT_SEARCH_FACTOR):
        self.buf = buf
        self.octets = 0             # the work so far: octets searched, indexed or compared
        self._direct_octets = direct_factor * len(buf)
        self._index: array | None = None    # (hash of a line's text << bits) | its offset,
        self._bits = len(buf).bit_length()  # sorted, so one text's lines are in order
        self._hash_mask = (1 << (63 - self._bits)) - 1
        self._dense = False         # too many "--" lines to index

    def matches(self, start: int, end: int, boundary: str) -> Iterator[re.Match[bytes]]:
        """The delimiter lines of `boundary` in buf[start:end], in order, as the delimiter
        pattern's finditer gives them (the caller stops at the close delimiter)."""
        marker = boundary.encode("utf-8", "surrogateescape")
        delimiter = _delimiter_pattern(marker)
        if (b"\r" in marker or b"\n" in marker or self._cuts_a_line(end)
                or not self._indexed(end - start)):
            return self._direct(delimiter, start, end)    # what the index cannot answer
        return self._from_index(delimiter, marker, start, end)

    def _cuts_a_line(self, end: int) -> bool:
        """Whether the line at `end` began before it (its text in the index is longer)."""
        buf = self.buf
        return 0 < end < len(buf) and buf[end - 1] not in b"\r\n" and buf[end] not in b"\r\n"

    def _indexed(self, octets: int) -> bool:
        """Whether the index answers a search of `octets` more (building it if now due)."""
        if self._index is None and not self._dense and (
                self.octets + octets > self._direct_octets):
            self._build_index()
        return self._index is not None

    def _build_index(self) -> None:
        buf = self.buf
        most = len(buf) // INDEX_MIN_OCTETS_PER_LINE
        bits, mask = self._bits, self._hash_mask
        self.octets += len(buf)
        lines = [((hash(line[1]) & mask) << bits) | line.start()
                 for line in islice(_DASH_LINE.finditer(buf), most + 1)]
        if len(lines) > most:
            self._dense = True
            return
        lines.sort()
        self._index = array("q", lines)

    def _direct(self, delimiter: re.Pattern[bytes], start: int, end: int
                ) -> Iterator[re.Match[bytes]]:
        searched_to = start
        for match in delimiter.finditer(self.buf, start, end):
            self.octets += match.end() - searched_to
            searched_to = match.end()
            yield match
        self.octets += end - searched_to

    def _from_index(self, delimiter: re.Pattern[bytes], marker: bytes, start: int, end: int
                    ) -> Iterator[re.Match[bytes]]:
        # an open delimiter line's text is the boundary (less any blanks it ends with), a close
        # one's the boundary and "--"; each line found is matched, since a text's hash may be
        # another's and a boundary ending in blanks needs them on the line
        # (a match ends at the end of its line, as the marker holds no line break: finditer
        # would go on at the next line too)
        texts = (marker.rstrip(b" \t"), marker + b"--")
        for line_start in heapq.merge(*(self._lines(text, start, end) for text in texts)):
            self.octets += len(marker) + 2
            match = delimiter.match(self.buf, line_start, end)
            if match is not None:
                yield match

    def _lines(self, text: bytes, start: int, end: int) -> Iterator[int]:
        """Offsets in [start, end) of the lines starting with "--" + `text` (and blanks), or
        of a text with the same hash."""
        index, bits = self._index, self._bits
        key = (hash(text) & self._hash_mask) << bits
        offset_mask = (1 << bits) - 1
        for at in range(bisect_left(index, key | start), bisect_left(index, key | end)):
            yield index[at] & offset_mask


_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_UU_BEGIN = re.compile(rb"^begin[ \t]+[0-7]{3,4}[ \t]+", re.MULTILINE)


def decode_transfer(body: bytes, encoding: str | None) -> tuple[bytes, str | None, str | None]:
    """(decoded bytes, error, defect). An error means the content could not be decoded
    (unprocessable for an attachment); a defect means it was decoded leniently. An encoding
    not known here (`transfer_decoding` None: x-gzip64, x-foo) gives the body as written
    with an error: a reader that knows it decodes the part into content no check saw (SPEC
    §3 scan.unprocessable "undecodable transfer encoding of an attachment"; content18 B1)."""
    enc = (encoding or "7bit").strip().lower()
    decoding = transfer_decoding(enc)
    if decoding == "none":
        if enc not in TRANSFER_DECODINGS:          # an identity encoding misspelt
            return body, None, f"unknown Content-Transfer-Encoding {enc!r} (read as 8bit)"
        return body, None, None
    if decoding == "base64":
        clean = _B64_JUNK.sub(b"", body.split(b"=", 1)[0] if b"=" in body else body)
        defect = None
        if len(clean) % 4 == 1:
            clean = clean[:-1]
            defect = "base64 with a stray final character"
        clean += b"=" * (-len(clean) % 4)
        try:
            return binascii.a2b_base64(clean), None, defect
        except (binascii.Error, ValueError) as exc:
            return b"", f"undecodable base64 ({exc})", None
    if decoding == "quoted-printable":
        try:
            return binascii.a2b_qp(body), None, None
        except (binascii.Error, ValueError) as exc:
            return b"", f"undecodable quoted-printable ({exc})", None
    if decoding == "uuencode":
        return _decode_uu(body)
    return body, (f"unknown Content-Transfer-Encoding {enc!r}, not decoded (scanned as "
                  f"written)"), None


def _decode_uu(body: bytes) -> tuple[bytes, str | None, str | None]:
    begin = _UU_BEGIN.search(body)
    if begin is None:
        return b"", "uuencoded part without a begin line", None
    out = bytearray()
    lines = body[begin.end():].split(b"\n")[1:]
    for line in lines:
        line = line.rstrip(b"\r")
        if line.strip() in (b"end", b"`", b""):
            if line.strip() == b"end":
                break
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            try:                       # some encoders pad badly; decode what the count says
                count = (line[0] - 32) & 63
                out += binascii.a2b_uu(line[:1 + (count * 4 + 2) // 3])
            except (binascii.Error, IndexError) as exc:
                return bytes(out), f"undecodable uuencode ({exc})", None
    return bytes(out), None, None
