"""A MIME part's content fields read (RFC 2045, RFC 2183, RFC 2231, RFC 2047): its
Content-Type, Content-Transfer-Encoding and Content-Disposition fields, as mime.py found them
on the raw bytes, become one ContentInfo (type, boundary, charset, file names, transfer
encoding) with the defects and conflicts met on the way; `decode_words` reads the RFC 2047
words of any field (a file name, the Subject). Values are read with the email package,
through fieldvalue.py, which splits them for it in linear time with the same results. As in
mime.py (its rule 1), nothing here raises on hostile input: what cannot be read is a defect.

Rules
    1. A header that repeats Content-Type or Content-Transfer-Encoding is read one way here
       (the first field, as Python's email package does), but readers differ in which one
       they follow (ClamAV reached EICAR behind a second "base64": av finding 1), so the
       sender would choose what is scanned. Repeats that mean the same — one type/subtype
       and, for a multipart, one boundary (charset and other parameters aside); encodings
       decoded alike — are a defect; repeats that differ are a conflict
       (`ContentInfo.conflicts`), which the decomposer makes unprocessable. None of the
       corpus' 2,932 ham and 1,343 spam messages has either; 6 of its 475 MIME fixtures
       (spam and malformed ones) have conflicting Content-Types.
    2. A part may declare its file name more than once: Content-Disposition's filename and
       Content-Type's name, each possibly repeated as a field or as a parameter of one field
       (`filename="readme.txt"; filename="run.vbs"`), in RFC 2231 form or not, and a name=
       in Content-Disposition or a filename= in Content-Type. Readers differ in which they
       show and save under (Python and ClamAV take the first filename, some clients the
       name, the last parameter or the RFC 2231 form), so every such name is kept
       (`ContentInfo.other_names`; of many, the first and the last few of each field kind)
       and the file-name rules match each: "readme.txt" in one place no longer hides
       "run.vbs" in another (guide36 finding 7). Each parameter is read on its own, with
       the email package's RFC 2231 decoding: a repeated filename*= is not joined into one
       name, and a filename*= beside filename*0= (which the email package fails on) loses
       neither. A name with RFC 2047 words is kept in each reading readers give it
       (fieldvalue.py rule 4): `filename="=?UTF-8?Q?run.v?=bs"` is "run.vbs" (the
       `filename`, as readers show it) and "run.v bs" (content18 A1). Not for an attached
       message (message/*): a reader opens it as a message
       whatever it is called, and mail clients name one by its subject ("Your receipt from
       example.com", which *.com would have deleted: regress11 finding 6).
    3. A parameter the email package cannot read costs only what it reads: an unreadable
       charset or file name is a defect, and the part keeps its type, boundary and the names
       that could be read (a part that lost them all was read as text/plain without a name,
       past the file-name rules).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import utils

from core.pipeline.decompose.fieldvalue import (ParamMessage, collapse_rfc2231_value,
                                                decode_words_as_shown, decode_words_text,
                                                split_params)

__all__ = ["ContentInfo", "content_info", "decode_words", "decode_word_readings",
           "TRANSFER_DECODINGS", "transfer_decoding"]


def decode_words(value: str) -> tuple[str, bool]:
    """RFC 2047 encoded words decoded as mail readers show them (fieldvalue.py rule 4);
    (text, ok). Never raises."""
    readings, ok = decode_word_readings(value)
    return readings[0], ok


def decode_word_readings(value: str) -> tuple[list[str], bool]:
    """([the text readers show, the legacy reading where it differs], ok): every reading
    of the RFC 2047 words mail readers give (fieldvalue.py rule 4), for what is matched
    against a pattern or term — "zqx=?UTF-8?Q?forbid?=" is "zqxforbid" and "zqx forbid".
    Not ok: a word the legacy reading cannot decode (bytes its charset does not hold: that
    reading is the value as written, and the reader's has U+FFFD for them), or one neither
    can (a charset nobody knows, bad base64: the value as written is its one reading).
    Never raises."""
    if "=?" not in value:
        return [value], True
    try:
        shown = decode_words_as_shown(value)
    except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
        raise
    except Exception:
        return [value], False
    try:
        legacy, ok = decode_words_text(value), True
    except MemoryError:
        raise
    except Exception:
        legacy, ok = value, False
    return ([shown] if legacy == shown else [shown, legacy]), ok


@dataclass
class ContentInfo:
    content_type: str           # "text/plain"
    boundary: str | None
    charset: str | None
    filename: str | None
    disposition: str | None
    transfer_encoding: str | None
    defects: list[str]
    flowed: bool = False        # format=flowed (RFC 3676)
    delsp: bool = False         # ... with DelSp=yes
    conflicts: list[str] = field(default_factory=list)   # rule 1: fields read two ways
    other_names: list[str] = field(default_factory=list)  # rule 2: names besides filename


def content_info(fields: list[tuple[str, str]], default_type: str = "text/plain") -> ContentInfo:
    message = ParamMessage()      # its parameter readers are linear (fieldvalue.py rule 1)
    defects: list[str] = []
    types: list[str] = []
    encodings: list[str] = []
    dispositions: list[str] = []
    for name, value in fields:
        lower = name.lower()
        if lower == "content-type":
            types.append(value)
        elif lower == "content-transfer-encoding":
            encodings.append(value)
            continue
        elif lower == "content-disposition":
            dispositions.append(value)
        else:
            continue
        if message[name] is not None:
            defects.append(f"duplicate {name}")
            continue
        message[name] = value
    cte = (encodings[0].strip().lower() or None) if encodings else None
    if len(encodings) > 1:
        defects.append("duplicate Content-Transfer-Encoding")
    conflicts = _conflicts(types, encodings, default_type)
    if default_type != "text/plain":
        message.set_default_type(default_type)
    try:
        content_type = message.get_content_type()
        raw_type = message.get("content-type")
        if raw_type is not None and "/" not in str(raw_type).split(";")[0]:
            defects.append("invalid Content-Type")
        disposition = message.get_content_disposition()
    except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
        raise
    except Exception as exc:   # a header the email package cannot read at all
        defects.append(f"unreadable content headers ({type(exc).__name__})")
        return ContentInfo(default_type, None, None, None, None, cte, defects,
                           conflicts=conflicts)
    readers = _Readers(defects)                                     # rule 3
    boundary = readers.read(lambda: message.get_param("boundary"))
    if isinstance(boundary, tuple):
        boundary = boundary[2]
    charset = readers.read(message.get_content_charset)
    flowed = bool(readers.read(lambda: _param_is(message, "format", "flowed")))
    delsp = bool(readers.read(lambda: _param_is(message, "delsp", "yes")))
    is_message = content_type.startswith("message/")
    names = ([], []) if is_message else (_field_names(dispositions), _field_names(types))
    failures = readers.failures
    filename = readers.read(message.get_filename)
    if readers.failures > failures:
        # the email package failed on a name parameter; the first name declared stands in
        filename = next((name for kind in names for name in kind), None)
    readings: list[str] = []
    if filename is not None:
        readings, ok = decode_word_readings(str(filename))
        if not ok:
            defects.append("bad encoded word in a file name")
        readings = [name.replace("\x00", "").strip() for name in readings]
        filename = readings[0] or None
    if boundary is not None:
        boundary = str(boundary).strip('"')
    return ContentInfo(content_type, boundary or None, charset, filename, disposition, cte,
                       defects, flowed, flowed and delsp, conflicts,
                       _other_names(filename, ([] if is_message else readings[1:], *names)))


class _Readers:
    """Rule 3: one reader of the email package at a time; one that raises gives None and,
    the first time, the defect the whole header used to be."""

    def __init__(self, defects: list[str]):
        self.defects = defects
        self.failures = 0

    def read(self, reader):
        try:
            return reader()
        except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
            raise
        except Exception as exc:
            if not self.failures:
                self.defects.append(f"unreadable content headers ({type(exc).__name__})")
            self.failures += 1
            return None


# Rule 2, of many declared names: MAX_NAMES_PER_KIND are kept of each field kind, the first
# and the last half, read from at most READ_AT_MOST of its fields and as many names of each
# field, again the first and the last half (a name with a NUL counts twice: whole and cut).
MAX_NAMES_PER_KIND = 16
READ_AT_MOST = MAX_NAMES_PER_KIND // 2
NAME_PARAMETERS = ("filename", "name")
# a parameter name, also in RFC 2231 form: name*, name*0, name*1* (as the email package's
# email.utils.rfc2231_continuation reads them)
_PARAMETER = re.compile(r"(?P<name>\w+)(?:\*(?:(?P<number>[0-9]+)\*?)?)?", re.ASCII)


def _ends(items: list, most: int) -> list:
    """`items`, or of more than `most`, the first and the last most/2: the ones readers
    take (the first, the last) stay, and thousands cost no more than a few."""
    return items if len(items) <= most else items[:most // 2] + items[-(most // 2):]


def _field_names(values: list[str]) -> list[str]:
    """Rule 2: every file name the fields `values` (all Content-Disposition or all
    Content-Type fields of a part) declare, in order, each also cut at a NUL, where some
    readers end a name ("a.exe\\0.txt" is a.exe to them); of more than MAX_NAMES_PER_KIND,
    the first and the last half."""
    out: list[str] = []
    for value in _ends(list(dict.fromkeys(values)), READ_AT_MOST):
        for declared in _ends(_declared_names(value), READ_AT_MOST):
            for name in decode_word_readings(declared)[0]:        # rule 2: each reading
                for name in (name.replace("\x00", "").strip(),
                             name.split("\x00", 1)[0].strip()):
                    if name and name not in out:
                        out.append(name)
    return _ends(out, MAX_NAMES_PER_KIND)


def _declared_names(value: str) -> list[str]:
    """Rule 2: the filename and name parameters of one field value, in order: each plain or
    RFC 2231 (filename*=) parameter on its own, a set of continuations (filename*0,
    filename*1*, ...) as one. Decoded as the email package decodes them (fieldvalue.py);
    a set it cannot decode is read as its pieces written one after the other."""
    singles: list[list[tuple[str, str]]] = []
    continued: dict[str, list[tuple[str, str]]] = {}
    for piece in split_params(value)[1:]:
        key, sep, text = piece.partition("=")
        found = _PARAMETER.fullmatch(key.strip())
        if not sep or found is None or found["name"].lower() not in NAME_PARAMETERS:
            continue
        if found["number"] is None:
            singles.append([(key.strip(), text.strip())])
        else:
            continued.setdefault(found["name"].lower(), []).append((key.strip(), text.strip()))
    out = []
    for params in [*singles, *continued.values()]:
        try:
            [(_, read)] = utils.decode_params([("", "")] + params)[1:]
            if isinstance(read, tuple):         # as Message.get_param unquotes it
                read = (read[0], read[1], utils.unquote(read[2]))
            out.append(collapse_rfc2231_value(read))
        except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
            raise
        except Exception:
            out.append("".join(utils.unquote(text) for _, text in params))
    return out


def _other_names(filename: str | None, names: tuple[list[str], ...]) -> list[str]:
    """Rule 2: the names of every list of `names` besides `filename`."""
    return [name for name in dict.fromkeys(n for kind in names for n in kind)
            if name and name != filename]


def _conflicts(types: list[str], encodings: list[str], default_type: str) -> list[str]:
    """Rule 1: one line for each of the two fields whose repeats differ in meaning. Each
    distinct value is read once, and reading stops at the first difference, so a header of
    many such fields costs a few times its splitting (fieldvalue.py reads each linearly)."""
    out = []
    for name, values, meaning in (
            ("Content-Type", types, lambda value: _type_meaning(value, default_type)),
            ("Content-Transfer-Encoding", encodings, _decoding)):
        first: tuple[str, object] | None = None
        for value in dict.fromkeys(value.strip() for value in values):
            read = meaning(value)
            if first is None:
                first = (value, read)
            elif read != first[1]:
                out.append(f"conflicting {name} fields ({_shown(first[0])} and "
                           f"{_shown(value)}): readers differ in which they follow, and only "
                           f"the first was scanned")
                break
    return out


def _type_meaning(value: str, default_type: str) -> tuple[str, str | None]:
    """What a Content-Type value decides about reading the part: its type/subtype and, for
    a multipart, its boundary (read as content_info reads them)."""
    message = ParamMessage()
    message.set_default_type(default_type)
    message["Content-Type"] = value
    try:
        content_type = message.get_content_type()
        boundary = message.get_param("boundary") if content_type.startswith("multipart/") else None
    except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
        raise
    except Exception:            # unreadable: a meaning of its own
        return value.lower(), None
    if isinstance(boundary, tuple):
        boundary = boundary[2]
    return content_type, str(boundary).strip('"') if boundary is not None else None


MAX_SHOWN_CHARS = 60            # of a field value quoted in an error


def _shown(value: str) -> str:
    return repr(value if len(value) <= MAX_SHOWN_CHARS else value[:MAX_SHOWN_CHARS] + "…")


def _param_is(message, name: str, value: str) -> bool:
    found = message.get_param(name)
    if isinstance(found, tuple):            # RFC 2231 form
        found = found[2]
    return found is not None and str(found).strip().strip('"').lower() == value


# How each Content-Transfer-Encoding is decoded (mime.decode_transfer), and so which repeats
# mean the same (rule 1); `transfer_decoding` reads any other.
TRANSFER_DECODINGS = {"7bit": "none", "8bit": "none", "binary": "none", "": "none",
                      "base64": "base64", "quoted-printable": "quoted-printable",
                      "x-uuencode": "uuencode", "uuencode": "uuencode", "x-uue": "uuencode",
                      "uue": "uuencode"}
# An identity encoding spelt another way by the sender ("8-bit", "7bits", "8 bit": the only
# unknown names on the MIME corpus' message texts): no reader decodes anything there.
_IDENTITY_SPELLING = re.compile(r"[0-9]+[ _-]?bits?")


def transfer_decoding(encoding: str | None) -> str | None:
    """How a Content-Transfer-Encoding value is decoded: "none", "base64",
    "quoted-printable" or "uuencode" (TRANSFER_DECODINGS, and "none" for an identity
    encoding spelt another way); None for one not known here (x-gzip64, x-foo), which a
    reader that knows it decodes into content nothing here saw (content18 B1)."""
    encoding = (encoding or "").strip().lower()
    found = TRANSFER_DECODINGS.get(encoding)
    if found is None and _IDENTITY_SPELLING.fullmatch(encoding):
        return "none"
    return found


def _decoding(encoding: str | None) -> str:
    # an unknown encoding means itself: two of them may be decoded differently
    return transfer_decoding(encoding) or (encoding or "").strip().lower()
