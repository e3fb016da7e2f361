"""Decomposition (SPEC §5 step 2): raw message bytes -> MessageView.

Walks the MIME tree on the raw bytes (mime.py; a part's content fields: content_fields.py),
decodes transfer encodings, descends into attached messages (message/rfc822) and containers
(archives.py; the files packaged in OLE2 documents: engine_archives.py rule 5), sniffs
every part's true type (sniff.py), detects password protection (archives.py,
encryption.py), reduces text parts to text (text.py, with the charsets mail readers use:
charsets.py) and makes the uuencoded files written into a message text parts
(uuencoded.py) — all under the per-message container budget (limits.py).

Rules
    1. `decompose()` never raises for anything in the message: defects go to
       `view.defects`, content that cannot be decoded or expanded to `view.errors`, the
       first limit hit to `view.limit_hit` (and decomposition stops there). A bug raises
       (the worker crash path of the queue manager catches it).
    2. Parts are numbered in pre-order as they are found; `depth` follows SPEC §3 (message
       0, +1 per archive or attached message; multipart nesting adds nothing).
    3. MIME nesting (multiparts and attached messages) deeper than MAX_MIME_NESTING is not
       followed, so hostile nesting cannot exhaust the stack: the part where the walk stops
       is kept as one opaque part and is an error (`view.errors`, SPEC §3
       scan.unprocessable), since what lies below it was never scanned — not a mere
       defect. A chain of attached messages alone meets container.max_depth (at most 100,
       limits.py; checked first) before this.
    4. Finding the multiparts' delimiter lines in a buffer (the message, or an attached
       message that had to be decoded) may cost MAX_DELIMITER_SEARCH_FACTOR times its size
       (mime.py rule 5 keeps real structures, at any nesting, under half of that). Past it
       the walk stops and the message is unprocessable (`view.errors`, scan.unprocessable,
       which the administrator controls) rather than keep a worker busy towards its time
       limit (SPEC §4), as nesting did before (hostile-mime finding 5).
    5. A part whose repeated Content-Type or Content-Transfer-Encoding fields disagree
       (content_fields.py rule 1) is walked as the first of them says, and is an error
       (`view.errors`, scan.unprocessable): another reader may follow the other field, and
       what that one shows was never scanned.
    6. A part in a Content-Transfer-Encoding not known here (x-gzip64, x-foo;
       mime.decode_transfer) is read as written, and, for an attachment (an attached
       message too), is an error (`view.errors`, scan.unprocessable: "undecodable transfer
       encoding of an attachment"): a reader or a tool that knows the encoding decodes it
       into a file no engine saw (content18 B1). For the message text (a text part that
       declares no name) it is a defect only: readers show that text as it is written,
       which is what the checks read and the engines scan. An identity encoding spelt
       another way ("8-bit", "7bits": the only unknown names on the MIME corpus' texts) is
       read as 8bit, a defect only, for any part: no reader decodes anything there.
    7. Header text no encoded word declares is read as mail readers read it, in the
       message's charset (mime.py rule 6, `message_charset`; i18n19 A1): the Subject and
       the other top-level fields as they show it, each also in the older reading
       (UTF-8 else Latin-1) where that differs, as the legacy reading of encoded words is
       (`view.legacy_readings`: matched, never shown, and the heuristic engine's reading);
       a file name in both readings (`other_names`), so a pattern written either way meets
       it. An attached message is another message: its headers, and its parts', are read
       in its own charset (`_Message`; the outer one's made a forwarded Shift_JIS
       message's raw file name U+FFFD soup in a UTF-8 message: review19 R2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.pipeline.decompose import archives, engine_archives, uuencoded
from core.pipeline.decompose.encryption import office_is_encrypted, pdf_is_encrypted
from core.pipeline.decompose.limits import Budget, LimitExceeded
from core.pipeline.decompose.content_fields import (content_info, decode_word_readings,
                                                    transfer_decoding)
from core.pipeline.decompose.mime import (DelimiterSearch, decode_transfer, find_parts,
                                          message_charset, split_header)
from core.pipeline.decompose.sniff import CONTAINER_TYPES, true_type
from core.pipeline.decompose.text import as_read, decode_text, html_texts, unflow
from core.pipeline.view import LimitHit, MessageView, Part, PartError, is_text_type

__all__ = ["decompose", "decompose_bytes", "Budget", "LimitExceeded", "SCRATCH_DIR_KEY"]

# The worker settings' key of the scratch directory the core chose at start (scan.temp_dir,
# else tmp/ in the data home): core/pipeline/service.py puts it there.
SCRATCH_DIR_KEY = "scan.scratch_dir"

MAX_MIME_NESTING = 100
MAX_DELIMITER_SEARCH_FACTOR = 8     # rule 4, in sizes of the buffer searched
MAX_DEFECTS = 200
TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")


def decompose(path, context: Mapping, settings: Mapping) -> MessageView:
    """Read the message file at `path` and take it apart (rule 1)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    return decompose_bytes(raw, context, settings)


def decompose_bytes(raw: bytes, context: Mapping, settings: Mapping) -> MessageView:
    view = MessageView(queue_id=context.get("queue_id", ""), sender=context.get("sender", ""),
                       recipients=tuple(context.get("recipients", ())),
                       client_ip=context.get("client_ip", ""), helo=context.get("helo", ""),
                       size=len(raw), is_generated=bool(context.get("is_generated")),
                       skip_antispam=bool(context.get("skip_antispam")),
                       meta=dict(context.get("meta") or {}), raw=raw,
                       decompose_context=context, decompose_settings=settings)
    walker = _Walker(raw, view, Budget.from_settings(settings),
                     scratch_dir=settings.get(SCRATCH_DIR_KEY))
    try:
        walker.entity(raw, 0, len(raw), parent=None, depth=0, in_raw=True, location="message",
                      cut=None, nesting=0, message=_Message(raw, 0, len(raw)))
    except LimitExceeded as hit:
        view.limit_hit = LimitHit(hit.limit, float(hit.value), float(hit.maximum), hit.location)
    except RecursionError:
        view.errors.append(PartError(0, "structure nested too deeply to follow"))
    except _TooCostly:
        pass                                # the error is on the part where the walk stopped
    view.extracted_octets = walker.budget.total_octets
    return view


class _TooCostly(Exception):
    """Rule 4: the walk stops."""


@dataclass
class _Message:
    """A message the walk is in: the top one, or an attached one, at buf[start:end] (rule
    7: its headers are read in its own charset)."""
    buf: bytes
    start: int
    end: int
    charset: tuple[str | None] | None = None     # (message_charset,) once asked


class _Walker:
    def __init__(self, raw: bytes, view: MessageView, budget: Budget,
                 scratch_dir: str | None = None):
        self.raw = raw
        self.view = view
        self.budget = budget
        self.scratch_dir = scratch_dir    # where a container tool may write (archives.py 3)
        # by id() of each buffer being walked; an entry holds its buffer, so no other buffer
        # can take that id while it is there
        self.searches: dict[int, DelimiterSearch] = {}
        # the same for `message_charset`'s own look at the parts (rule 7), which the walk's
        # budget (rule 4) does not pay for: one per buffer, so attached messages in place
        # share it
        self.charset_searches: dict[int, DelimiterSearch] = {}

    def message_charset(self, message: _Message) -> str | None:
        """Rule 7: the charset of `message`, found the first time one of its headers needs
        it."""
        if message.charset is None:
            search = self.charset_searches.get(id(message.buf))
            if search is None:
                search = self.charset_searches[id(message.buf)] = DelimiterSearch(message.buf)
            message.charset = (message_charset(message.buf, message.start, message.end,
                                               search),)
        return message.charset[0]

    # --- bookkeeping -------------------------------------------------------------------
    def new_part(self, **fields) -> Part:
        part = Part(id=len(self.view.parts), **fields)
        if part.id:
            self.budget.add_file(part.location)
        self.view.parts.append(part)
        return part

    def defect(self, part: Part, text: str) -> None:
        part.defects.append(text)
        if len(self.view.defects) < MAX_DEFECTS:
            self.view.defects.append(f"{part.location}: {text}")

    def error(self, part: Part, reason: str) -> None:
        self.view.errors.append(PartError(part.id, reason))

    def carrier_of(self, part: Part) -> int:
        return part.id if part.span is not None else (part.carrier if part.carrier is not None
                                                       else part.id)

    # --- archives call these -----------------------------------------------------------
    def take(self, out: bytearray, chunk: bytes, location: str, compressed_in: int) -> None:
        """Append a decompressed chunk, charging the budget first."""
        if not chunk:
            return
        self.budget.charge(len(chunk), location)
        out += chunk
        self.budget.check_file(len(out), location)
        self.budget.check_ratio(len(out), compressed_in, location)

    def read_limited(self, read, location: str, compressed_in: int | None) -> bytes:
        out = bytearray()
        while True:
            chunk = read(archives.CHUNK_OCTETS)
            if not chunk:
                return bytes(out)
            self.take(out, chunk, location, compressed_in or len(out))

    def add_member(self, container: Part, name: str, data: bytes | None, *,
                   declared: int | None = None, encrypted_member: bool = False,
                   expand: bool = True, other_names: list[str] | None = None) -> Part:
        name = (name or "").replace("\x00", "") or "unnamed"
        member = self.new_part(parent=container.id, depth=container.depth + 1,
                               location=f"{container.location}/{name}", origin=(
                                   "tnef" if container.container == "tnef" else "archive"),
                               filename=name, other_names=other_names or [],
                               is_attachment=True,
                               carrier=self.carrier_of(container), declared_size=declared)
        if data is None:
            member.expanded = not encrypted_member
            member.encrypted = False
            return member
        member.data = data
        member.content_type = "application/octet-stream"
        if expand:
            self.content(member)
        return member

    # --- MIME ----------------------------------------------------------------------------
    def entity(self, buf: bytes, start: int, end: int, *, parent: int | None, depth: int,
               in_raw: bool, location: str, cut, nesting: int, message: _Message,
               default_type: str = "text/plain") -> None:
        """The part at buf[start:end], a part of `message` (rule 7)."""
        header = split_header(buf, start, end)
        fields = header.read_fields(self.message_charset(message) if header.undeclared
                                    else None)
        info = content_info(fields, default_type)
        if fields is not header.fields and not info.content_type.startswith("message/"):
            older = content_info(header.fields, default_type)         # rule 7
            info.other_names += [name for name in (older.filename, *older.other_names)
                                 if name and name != info.filename
                                 and name not in info.other_names]
        part = self.new_part(parent=parent, depth=depth, location=location,
                             content_type=info.content_type, charset=info.charset,
                             flowed=info.flowed, delsp=info.delsp,
                             filename=info.filename, other_names=info.other_names,
                             disposition=info.disposition,
                             transfer_encoding=info.transfer_encoding)
        if in_raw:
            part.span, part.body_span, part.cut = (start, end), (header.body_start, end), cut
        elif parent is not None:
            part.carrier = self.carrier_of(self.view.parts[parent])
        if parent is not None and part.carrier is None and part.span is None:
            part.carrier = self.carrier_of(self.view.parts[parent])
        for text in header.defects + info.defects:
            self.defect(part, text)
        for reason in info.conflicts:       # rule 5
            self.error(part, reason)
        if part.id == 0:
            self._top_headers(part, fields, header.fields)
        maintype = info.content_type.split("/", 1)[0]
        if maintype == "multipart":
            self._multipart(buf, part, info, header.body_start, end, in_raw, nesting, message)
            return
        if info.content_type in ("message/rfc822", "message/global"):
            self._attached_message(buf, part, info, header.body_start, end, in_raw, nesting)
            return
        part.is_attachment = self._is_attachment(part)
        body = buf[header.body_start:end]
        data, error, defect = decode_transfer(body, info.transfer_encoding)
        if defect:
            self.defect(part, defect)
        if error:
            if part.is_attachment:
                self.error(part, error)
            else:
                self.defect(part, error)
            data = body
        self.budget.check_file(len(data), location)
        self.budget.charge(len(data), location)
        part.data = data
        self.content(part)

    def _top_headers(self, part: Part, fields, older_fields) -> None:
        """`fields` as readers read them, `older_fields` their undeclared octets read the
        older way (rule 7; the same list where there are none)."""
        decoded = []
        for (name, value), (_, older) in zip(fields, older_fields):
            readings, ok = decode_word_readings(value)
            if not ok:
                self.defect(part, f"bad encoded word in {name}")
            learned = (readings if older is value else decode_word_readings(older)[0])[-1]
            if learned != readings[0]:        # fieldvalue.py rule 4, and rule 7
                self.view.legacy_readings[len(decoded)] = learned
            decoded.append((name, readings[0]))
        self.view.headers = decoded
        self.view.raw_headers = list(fields)
        subjects = [v for k, v in decoded if k.lower() == "subject"]
        self.view.subject = subjects[0] if subjects else ""

    @staticmethod
    def _is_attachment(part: Part) -> bool:
        # a part that declares a name anywhere is a file (content_fields.py rule 2)
        if part.disposition == "attachment" or part.filename or part.other_names:
            return True
        return not part.content_type.startswith("text/")

    def _too_deep(self, part: Part, nesting: int) -> bool:
        """Rule 3: at MAX_MIME_NESTING the walk stops; the part stays opaque and unscanned."""
        if nesting < MAX_MIME_NESTING:
            return False
        self._stop_at(part, f"MIME nesting deeper than {MAX_MIME_NESTING} levels not followed "
                            f"(its content was not scanned)")
        return True

    def _stop_at(self, part: Part, reason: str) -> None:
        """Rules 3 and 4: the part stays one opaque part, and unscanned."""
        self.error(part, reason)
        part.is_multipart, part.is_attachment = False, True
        part.data = b""

    def _multipart(self, buf, part, info, body_start, end, in_raw, nesting, message) -> None:
        part.is_multipart = True
        if self._too_deep(part, nesting):
            return
        if not info.boundary:
            self.defect(part, "multipart without a boundary (read as text)")
            self._as_text_leaf(buf, part, body_start, end)
            return
        search = self.searches.get(id(buf))
        if search is None:
            search = self.searches[id(buf)] = DelimiterSearch(buf)
        children, closed = find_parts(buf, body_start, end, info.boundary, search)
        if search.octets > MAX_DELIMITER_SEARCH_FACTOR * len(buf):
            self._stop_at(part, f"MIME structure too costly to follow: finding its delimiter "
                                f"lines took more than {MAX_DELIMITER_SEARCH_FACTOR} times the "
                                f"size of the message (the rest was not scanned)")
            raise _TooCostly
        if not children:
            self.defect(part, "multipart boundary never found (read as text)")
            self._as_text_leaf(buf, part, body_start, end)
            return
        part.boundary = info.boundary
        if not closed:
            self.defect(part, "missing closing boundary")
        child_default = ("message/rfc822" if info.content_type == "multipart/digest"
                         else "text/plain")
        for index, child in enumerate(children, 1):
            self.entity(buf, child.start, child.end, parent=part.id, depth=part.depth,
                        in_raw=in_raw, location=f"{part.location}.{index}" if part.id
                        else f"part{index}",
                        cut=(child.cut_start, child.end) if in_raw else None,
                        nesting=nesting + 1, message=message, default_type=child_default)

    def _as_text_leaf(self, buf, part, body_start, end) -> None:
        part.is_multipart = False
        part.content_type = "text/plain"
        data = buf[body_start:end]
        self.budget.check_file(len(data), part.location)
        self.budget.charge(len(data), part.location)
        part.data = data
        self.content(part)

    def _attached_message(self, buf, part, info, body_start, end, in_raw, nesting) -> None:
        part.container = "message"
        part.is_attachment = True
        depth = part.depth + 1
        self.budget.check_depth(depth, part.location + "/")     # the configured limit first
        if self._too_deep(part, nesting):
            return
        encoding = (info.transfer_encoding or "7bit").lower()
        decoding = transfer_decoding(encoding)
        if decoding in ("none", None):          # read in place, as written (rule 6)
            _, error, defect = decode_transfer(b"", encoding)    # what its name makes of it
            if error:
                self.error(part, error)
            if defect:
                self.defect(part, defect)
            self.entity(buf, body_start, end, parent=part.id, depth=depth, in_raw=in_raw,
                        location=part.location + "/message", cut=None, nesting=nesting + 1,
                        message=_Message(buf, body_start, end))
            return
        data, error, defect = decode_transfer(buf[body_start:end], encoding)
        if defect:
            self.defect(part, defect)
        if error:
            self.error(part, error)
            return
        self.budget.check_file(len(data), part.location)
        self.budget.charge(len(data), part.location)
        self.entity(data, 0, len(data), parent=part.id, depth=depth, in_raw=False,
                    location=part.location + "/message", cut=None, nesting=nesting + 1,
                    message=_Message(data, 0, len(data)))
        self.searches.pop(id(data), None)
        self.charset_searches.pop(id(data), None)

    # --- content of a leaf: type, text, encryption, containers ------------------------------
    def content(self, part: Part) -> None:
        data = part.data
        kind = true_type(data)
        part.true_type = kind
        if (part.origin == "mime" and is_text_type(part.content_type)
                and not (part.is_attachment and kind is not None)):
            text, defect = decode_text(data, part.charset,
                                       is_html=part.content_type == "text/html")
            if defect:
                self.defect(part, defect)
            if part.content_type == "text/html":
                text, shown = html_texts(text)
                if shown is not None:
                    part.visible_text = as_read(shown)
            elif part.flowed and part.content_type == "text/plain":
                text = unflow(text, part.delsp)
            part.text = as_read(text)
            if part.is_body_text and part.content_type == "text/plain":
                uuencoded.expand(self, part)        # files written into the text
        if kind == "pdf":
            part.encrypted = pdf_is_encrypted(data)
        elif kind == "ole":
            part.encrypted = bool(office_is_encrypted(data))
            if not part.encrypted:
                engine_archives.ole_objects(self, part)     # its packaged files
        if kind is None and part.content_type in TNEF_TYPES and data:
            self.error(part, "TNEF content without the TNEF signature")
            return
        if kind in CONTAINER_TYPES:
            archives.expand(self, part)
