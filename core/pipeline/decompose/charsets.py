"""Charset labels read as mail readers read them: the one place where a declared charset (a
Content-Type's, an RFC 2047 word's, an RFC 2231 value's, an HTML <meta>'s) becomes a way to
decode bytes. SPEC §3 finds terms "in the decoded text", and docs/filtering.md promises that
what a reader sees is what is scanned.

Readers do not take a label as Python's codec registry does. Thunderbird (encoding_rs) and
every webmail in a browser read it through the WHATWG Encoding Standard's table, which knows
labels Python does not ("x-sjis", "windows-31j", "x-gbk", "csgb2312", "ks_c_5601-1989",
"windows-874", "iso-8859-8-i", "x-mac-cyrillic"...: 75 of its 228), and reads common ones
more widely ("iso-8859-1" and "us-ascii" as windows-1252, "gb2312" as GBK, "shift_jis" with
the NEC and IBM rows, "euc-kr" as cp949, "iso-8859-9" as windows-1254, "tis-620" as
windows-874). A sender who labels text so that Python cannot read it, or reads it otherwise,
must not get it past a subject line, a content rule or a file-name pattern (i18n finding 2
and 3).

Rules
    1. A label is looked up in the Standard's table first (the `webencodings` package keeps
       it: 228 labels of 40 encodings), then in Python's registry, for the labels mail uses
       and the Standard does not (utf-7, cp850, iso-2022-jp-2, johab...). A label neither
       knows is unknown: `encoding` gives None, `decode` raises LookupError, and the caller
       decides (decompose/text.py reads such a text as UTF-8, else windows-1252).
    2. Each encoding is read with the Python codec closest to the Standard's decoder, the
       wider where two differ: GBK and gb18030 as gb18030 (the Standard's GBK decoder is its
       gb18030 one), Shift_JIS as cp932, EUC-KR as cp949, Big5 as big5hkscs, ISO-2022-JP
       with half-width katakana (iso2022_jp_ext reads all iso2022_jp reads); in windows-874 and windows-1250..1258 a byte of 0x80-0x9F that Python's
       codec leaves undefined is the C1 control of that number, as in the Standard's indexes,
       so "iso-8859-1" (windows-1252) still reads every byte as Latin-1 did. A UTF-16 text's
       byte order mark decides its byte order ("utf-16" alone says none).
    3. The labels the Standard sends to its "replacement" decoder (iso-2022-kr, hz-gb-2312,
       iso-2022-cn), which shows a reader nothing, are read with Python's codec where it has
       one: scanning text no reader shows can only find more.
    4. Reading only. What the gateway writes into a part (the disclaimer: text_append.py) is
       encoded with the label's codec as Python knows it, which is stricter: a reader that
       takes "iso-8859-1" literally must still read those bytes.
    5. Text as a reader shows it (`decode_as_read`: a text part's, an RFC 2047 word's, one
       rule for both): bytes a charset does not hold are each U+FFFD and the rest reads as
       labelled. Text labelled UTF-8 with one bad byte is UTF-8 with one U+FFFD, as
       encoding_rs and every browser show it; reading it all as windows-1252 made every
       letter past ASCII mojibake, so no non-Latin term, subject line or spam rule matched
       (i18n19 A2). Text labelled US-ASCII or not at all reads UTF-8 when its bytes are,
       else windows-1252, and so does a label nobody knows (with a defect).
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Callable

import webencodings

__all__ = ["encoding", "decode", "decode_as_read", "html_charset", "PRESCAN_OCTETS"]

# Longer than any label of the Standard (19 characters) or of Python's registry (21): a
# longer one is unknown without a look-up, and the cache of look-ups holds no long keys.
MAX_LABEL_CHARS = 40

# Rule 2: where the codec webencodings names reads less than the Standard's decoder.
_WIDER_CODECS = {"gbk": "gb18030", "iso-2022-jp": "iso2022_jp_ext"}
_C1_FILLED = frozenset({"windows-874", *(f"windows-125{n}" for n in range(9))})
_UTF16_BOMS = ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_USER_DEFINED = "".join(chr(b if b < 0x80 else 0xF700 + b) for b in range(256))

_Decoder = Callable[[bytes, str], str]


def encoding(label: str | None) -> str | None:
    """The name of the encoding readers read `label` in (the Standard's, e.g. "windows-1252"
    for "iso-8859-1", else Python's codec name), or None for a label nobody knows."""
    found = _lookup(label)
    return found[0] if found else None


def decode(data: bytes, label: str | None, errors: str = "strict") -> str:
    """`data` decoded as readers decode text labelled `label`. Raises LookupError for a label
    nobody knows, and UnicodeDecodeError as `bytes.decode` does under `errors`."""
    found = _lookup(label)
    if found is None:
        raise LookupError(f"unknown charset {label!r}")
    return found[1](data, errors)


def decode_as_read(data: bytes, label: str | None) -> tuple[str, str | None]:
    """(text, defect): `data` as a reader shows text labelled `label` (rule 5; None: no
    label, read as US-ASCII, RFC 2045 §5.2). The defect names what the bytes or the label
    got wrong: "invalid UTF-8", "unknown charset 'x'", "cannot decode charset 'x'". Never
    raises (but MemoryError)."""
    name = (label or "us-ascii").strip().strip('"').lower()
    found = encoding(name)
    if found is None:
        return utf8_or_windows_1252(data), f"unknown charset {name!r}"
    if found == "utf-8":
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace"), "invalid UTF-8"
    if name in ("us-ascii", "ascii"):
        return utf8_or_windows_1252(data), None
    try:
        return decode(data, name, "replace"), None
    except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
        raise
    except Exception:                       # codecs with odd failure modes (utf-7, ...)
        return decode(data, "windows-1252"), f"cannot decode charset {name!r}"


def utf8_or_windows_1252(data: bytes) -> str:
    """`data` as UTF-8 when it is, else as windows-1252 (which reads every byte: rule 2)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return decode(data, "windows-1252")


def _lookup(label: str | None) -> tuple[str, _Decoder] | None:
    # the Standard's "get an encoding": ASCII white space (and quotes) stripped, ASCII case
    # ignored; a label with other letters is none (str.lower would fold the Kelvin sign)
    label = (label or "").strip('\t\n\f\r "')
    if len(label) > MAX_LABEL_CHARS or not label.isascii():
        return None
    return _reader(label.lower())


@functools.lru_cache(maxsize=512)
def _reader(label: str) -> tuple[str, _Decoder] | None:
    found = webencodings.lookup(label)
    if found is not None and found.name != "replacement":
        name = found.name
        if name == "x-user-defined":
            return name, _charmap(_USER_DEFINED)
        if name in _C1_FILLED:
            return name, _charmap(_c1_filled(found.codec_info.name))
        if name in ("utf-16le", "utf-16be"):
            return name, functools.partial(_utf16, found.codec_info.name)
        return name, _codec(_WIDER_CODECS.get(name, found.codec_info.name))
    try:                                                        # rule 1, and rule 3
        python = codecs.lookup(label).name
        b"a".decode(python, "replace")      # a text encoding, not base64 or rot13
    except (LookupError, ValueError):
        return None
    return python, _codec(python)


def _codec(name: str) -> _Decoder:
    return lambda data, errors: data.decode(name, errors)


def _charmap(table: str) -> _Decoder:
    return lambda data, errors: codecs.charmap_decode(data, errors, table)[0]


def _c1_filled(codec: str) -> str:
    """The decoding table of a single-byte `codec` with its undefined bytes of 0x80-0x9F read
    as the C1 controls of those numbers (rule 2); "\\ufffe" marks the bytes still undefined."""
    table = bytes(range(256)).decode(codec, "surrogateescape")   # undefined b -> U+DC00+b
    return "".join(chr(ord(c) - 0xDC00) if "\udc80" <= c <= "\udc9f"
                   else "\ufffe" if "\udc80" <= c <= "\udcff" else c for c in table)


def _utf16(codec: str, data: bytes, errors: str) -> str:
    for bom, order in _UTF16_BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(order, errors)
    return data.decode(codec, errors)


# --- the charset an HTML document declares -----------------------------------------------------

# HTML §13.2.3.2 "prescan a byte stream to determine its encoding": the first 1024 bytes.
PRESCAN_OCTETS = 1024
_BLANKS = re.compile(rb"[\t\n\f\r ]*")
_BEFORE_ATTRIBUTE = re.compile(rb"[\t\n\f\r /]*")
_ATTRIBUTE_NAME = re.compile(rb"[^\t\n\f\r />][^\t\n\f\r />=]*")   # the first may be "="
_EQUALS = re.compile(rb"[\t\n\f\r ]*=[\t\n\f\r ]*")
_UNQUOTED_VALUE = re.compile(rb"[^\t\n\f\r >]*")
_META = re.compile(rb"<meta[\t\n\f\r /]", re.IGNORECASE)
_TAG = re.compile(rb"</?[A-Za-z]")
_TAG_NAME = re.compile(rb"[^\t\n\f\r >]*")
# HTML §2.4.1 "extracting a character encoding from a meta element" (the value is lower-cased
# already): the first "charset" that an "=" follows, its value quoted, or up to a blank or ";"
# (a quote never closed: none).
_CONTENT_CHARSET = re.compile(r"""charset[\t\n\f\r ]*=[\t\n\f\r ]*"""
                              r"""(?:"([^"]*)"|'([^']*)'|(["'])|([^\t\n\f\r ;]*))""")


def html_charset(data: bytes) -> str | None:
    """The encoding an HTML document's <meta charset> or <meta http-equiv="Content-Type"
    content="...; charset=..."> declares in its first PRESCAN_OCTETS bytes, found as a browser
    finds it (HTML §13.2.3.2: comments and other tags' attribute values do not count, the
    first meta that names a known encoding wins), or None. For a part whose MIME header
    names no charset: there the declaration is what browsers and webmail decode by."""
    head = data[:PRESCAN_OCTETS]
    pos = 0
    while pos < len(head):
        if head.startswith(b"<!--", pos):
            end = head.find(b"-->", pos + 2)                 # "<!-->" is a whole comment
            if end < 0:
                return None
            pos = end + 3
            continue
        if _META.match(head, pos):
            pos, found = _meta(head, pos + 6)
            if found:
                return found
        elif _TAG.match(head, pos):                 # another tag: its attributes are skipped
            pos = _TAG_NAME.match(head, pos).end()
            while (attribute := _attribute(head, pos))[1] is not None:
                pos = attribute[0]
            pos = attribute[0]
        elif head[pos:pos + 2] in (b"<!", b"</", b"<?"):
            pos = head.find(b">", pos)
            if pos < 0:
                return None
        pos += 1
    return None


def _meta(head: bytes, pos: int) -> tuple[int, str | None]:
    """(where the prescan goes on, the encoding it declares or None) for the attributes of a
    meta tag, as HTML §13.2.3.2 reads them: the first of each name counts; a charset
    attribute, or a content attribute's charset beside http-equiv="content-type"."""
    seen: set[bytes] = set()
    got_pragma, need_pragma, charset = False, None, None
    while True:
        pos, name, value = _attribute(head, pos)
        if name is None:
            break
        if name in seen:
            continue
        seen.add(name)
        if name == b"http-equiv":
            got_pragma = got_pragma or value == b"content-type"
        elif name == b"content" and charset is None:
            declared = _CONTENT_CHARSET.search(value.decode("latin-1"))
            if declared is not None and declared[3] is None:
                label = next(group for group in declared.groups() if group is not None)
                charset, need_pragma = _standard(label), True
        elif name == b"charset":
            charset, need_pragma = _standard(value.decode("latin-1")), False
    if need_pragma is None or (need_pragma and not got_pragma) or not charset:
        return pos, None
    if charset in ("utf-16le", "utf-16be"):
        return pos, "utf-8"
    return pos, "windows-1252" if charset == "x-user-defined" else charset


def _standard(label: str) -> str:
    """The Standard's encoding of `label` (a browser knows no other), or ""."""
    found = webencodings.lookup(label) if label.isascii() else None
    return found.name if found is not None else ""


def _attribute(head: bytes, pos: int) -> tuple[int, bytes | None, bytes]:
    """HTML §13.2.3.2 "get an attribute": (where it ends, its name or None when there is
    none, its value), ASCII-lower-cased. A quote never closed runs past the prefix."""
    pos = _BEFORE_ATTRIBUTE.match(head, pos).end()
    if pos >= len(head) or head[pos] == 0x3E:                        # ">"
        return pos, None, b""
    name = _ATTRIBUTE_NAME.match(head, pos)
    equals = _EQUALS.match(head, name.end())
    if equals is None:
        return _BLANKS.match(head, name.end()).end(), name[0].lower(), b""
    pos = equals.end()
    if pos >= len(head) or head[pos] == 0x3E:
        return pos, name[0].lower(), b""
    if head[pos] in b"\"'":
        end = head.find(head[pos:pos + 1], pos + 1)
        if end < 0:
            return len(head), name[0].lower(), b""
        return end + 1, name[0].lower(), head[pos + 1:end].lower()
    value = _UNQUOTED_VALUE.match(head, pos)
    return value.end(), name[0].lower(), value[0].lower()
