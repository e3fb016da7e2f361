"""The message view: what every check reads (decompose/ builds it, in a worker process).

A view is the message taken apart once: the envelope facts, the decoded top-level headers,
and a flat pre-order list of parts — MIME parts, attached messages, archive members, TNEF
attachments — each with its decoded content, its declared name, its true type (magic bytes)
and where it sits. Checks read it and never change it; it never leaves the worker process
(only findings do), so it may hold the decoded bytes.

Rules
    1. `parts[0]` is the message itself (depth 0). `Part.id` is its index in `parts`;
       `parent` is the id of the part that contains it (a multipart, an attached message,
       an archive). `depth` is the container depth of SPEC §3: each archive or attached
       message/rfc822 adds a level, multipart nesting does not.
    2. `span`/`body_span` are byte offsets into the raw message file, for parts whose bytes
       lie there verbatim (MIME parts, also inside a non-encoded message/rfc822). rewrite.py
       cuts and splices with them so that untouched parts stay byte-identical. Archive
       members have no span; `carrier` names the outermost part with a span that holds them
       (the attachment to remove when a member must go).
    3. Limits are enforced while decomposing (decompose/limits.py). When one is hit,
       decomposition stops there and `limit_hit` says which; the parts found so far stay.
    4. `errors` lists content that could not be decoded or expanded (SPEC §3
       scan.unprocessable); `defects` lists MIME defects that did not stop the parts being
       found (reported as `malformed`, not unprocessable).
    5. A uuencoded block in a message text (decompose/uuencoded.py) is a part of its own,
       a child of the text part, with `inline` saying where its lines lie in the text's
       decoded `data`: from its begin line to its "end" line when every line between
       decoded into its content, else to the last line that did (core/scan/unpack.py
       `uu_read`; what follows is the text's). It has no span, and no carrier: removing it
       removes those lines from the text (rewrite.py), not the text part. The antivirus
       scans the text without them only when they reach the "end" line (`inline_whole`, as
       `uu_read` found it), so every octet of the text is scanned, as text or as a block's
       content (review18 R1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

__all__ = ["Part", "MessageView", "LimitHit", "PartError", "is_text_type"]


@dataclass
class Part:
    id: int
    parent: int | None
    depth: int                          # container depth (rule 1)
    location: str                       # human path: "invoice.zip/docs/a.exe"
    origin: str = "mime"                # mime | archive | tnef | uuencode
    content_type: str = "application/octet-stream"   # declared (lower case, no params)
    charset: str | None = None
    flowed: bool = False                # format=flowed text (RFC 3676) ...
    delsp: bool = False                 # ... with DelSp=yes
    filename: str | None = None         # declared name (MIME filename/name, archive member name)
    other_names: list[str] = field(default_factory=list)  # more names (content_fields rule 2;
                                                          # legacy zip names: archives.py)
    disposition: str | None = None      # inline | attachment | None
    transfer_encoding: str | None = None
    true_type: str | None = None        # by content: "exe", "zip", "pdf", "elf", "gzip", ...
    container: str | None = None        # zip | tar | gzip | bzip2 | xz | 7z | rar | tnef | message
                                        # | cab | arj | cpio | iso | szdd | ole (a document
                                        # with packaged files: engine_archives.py rule 5)
    is_multipart: bool = False
    boundary: str | None = None         # a multipart's, as its delimiter lines were found
    is_attachment: bool = False
    encrypted: bool = False             # password-protected container/document
    data: bytes = b""                   # decoded content (b"" for multiparts)
    declared_size: int | None = None    # archive header size, when different from len(data)
    text: str | None = None             # decoded text of text/plain and text/html (HTML reduced)
    visible_text: str | None = None     # text/html: `text` without what inline CSS or the
                                        # hidden attribute hides (decompose/hidden.py);
                                        # None when it hides nothing
    span: tuple[int, int] | None = None        # headers + body in the raw file (rule 2)
    body_span: tuple[int, int] | None = None   # body only
    cut: tuple[int, int] | None = None         # bytes to remove to delete the part from its
                                               # multipart (line break + delimiter + part)
    carrier: int | None = None          # outermost part with a span holding this one
    inline: tuple[int, int] | None = None      # a file written inside its parent's text (a
                                               # uuencoded block, origin "uuencode"): where
                                               # it lies in the parent's `data` (rule 5)
    inline_whole: bool = False          # `inline` reaches the block's "end" line, every line
                                        # of it decoded into `data` (rule 5; uu_read's `whole`)
    defects: list[str] = field(default_factory=list)
    expanded: bool = True               # False: a container scanned whole, as a file: one we
                                        # could list but not open, or an OLE2 document,
                                        # which is more than its packaged files

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def names(self) -> list[str]:
        """Names a file-name rule looks at: every declared name (content_fields.py rule 2),
        and each name's last path element for archive members."""
        out: list[str] = []
        for name in filter(None, (self.filename, *self.other_names)):
            base = name.replace("\\", "/").rsplit("/", 1)[-1]
            out += [name] if base == name else [name, base]
        return out

    @property
    def extension(self) -> str | None:
        """The declared extension with its dot, lower case ('.exe'), or None."""
        return _extension(self.filename) if self.filename else None

    @property
    def extensions(self) -> list[str | None]:
        """The extension of each declared name (`names`' last path elements), as
        `extension` gives it, and of each name as Windows saves it, without trailing dots and
        spaces ("run.vbs." lands as run.vbs); None for a name without one. Empty when the
        part declares no name. What decides by extension (the scan policy) reads them all:
        readers differ in which name they take (content_fields.py rule 2)."""
        out: list[str | None] = []
        for name in dict.fromkeys(filter(None, (self.filename, *self.other_names))):
            for written in dict.fromkeys((name, name.rstrip(". "))):
                extension = _extension(written)
                if extension not in out:
                    out.append(extension)
        return out

    @property
    def is_body_text(self) -> bool:
        """A text part (`is_text_type`) that is part of the message text, not a file."""
        return (self.origin == "mime" and not self.is_attachment
                and is_text_type(self.content_type))


def _extension(name: str) -> str | None:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[1].lower() if "." in base else None


def is_text_type(content_type: str) -> bool:
    """text/plain, text/html, and every other text/ subtype (text/enriched, text/markdown,
    text/x-...): RFC 2046 §4.1.4 has a reader show an unknown one as plain text, so the
    checks read it as text too, or it would carry any word past them."""
    return content_type.startswith("text/")


@dataclass(frozen=True)
class LimitHit:
    limit: str          # the setting: "container.max_depth", "container.max_ratio", ...
    value: float        # what was seen (or would have been)
    maximum: float      # the limit
    location: str       # where


@dataclass(frozen=True)
class PartError:
    part: int
    reason: str


@dataclass
class MessageView:
    queue_id: str
    sender: str
    recipients: tuple[str, ...]
    client_ip: str = ""
    helo: str = ""
    size: int = 0
    is_generated: bool = False
    skip_antispam: bool = False
    headers: list[tuple[str, str]] = field(default_factory=list)   # top level, decoded
    # the same fields before RFC 2047 decoding: an address list must be parsed before its
    # display names are decoded (a decoded '"' or '(' would hide the address behind it).
    # Octets no encoded word declares are read here as in `headers`, in the message's
    # charset (decompose/__init__.py rule 7), not the older way
    raw_headers: list[tuple[str, str]] = field(default_factory=list)
    # index in `headers` -> the older reading of that field, where it differs from the one
    # readers show: its RFC 2047 words' legacy reading (decompose/fieldvalue.py rule 4:
    # "zqx=?UTF-8?Q?forbid?=" is "zqxforbid" in `headers`, "zqx forbid" here) and its raw
    # 8-bit octets read UTF-8 else Latin-1 (decompose/__init__.py rule 7: a raw Shift_JIS
    # Subject is Japanese in `headers`, Latin-1 mojibake here); matched, never shown, and
    # what the heuristic engine reads (`as_learned`)
    legacy_readings: dict[int, str] = field(default_factory=dict)
    subject: str = ""
    parts: list[Part] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)     # MIME defects, with their location
    errors: list[PartError] = field(default_factory=list)
    limit_hit: LimitHit | None = None
    extracted_octets: int = 0                            # decoded bytes of all parts
    meta: dict = field(default_factory=dict)  # envelope meta from the core (antispam: "rbl"
                                              # listing, "auto_whitelisted"), plain JSON data
    # the bytes decompose_bytes read, and the envelope and settings it read them with, for
    # a reading of other bytes with the same envelope and limits (`reread`); the message's
    # own bytes, not a copy
    raw: bytes = field(default=b"", repr=False, compare=False)
    decompose_context: Mapping | None = field(default=None, repr=False, compare=False)
    decompose_settings: Mapping | None = field(default=None, repr=False, compare=False)

    # --- helpers checks use ------------------------------------------------------------
    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def header_all(self, name: str, decoded: bool = True) -> list[str]:
        name = name.lower()
        fields = self.headers if decoded else self.raw_headers
        return [value for key, value in fields if key.lower() == name]

    def subjects(self) -> list[str]:
        """Every Subject field, decoded as readers show it, then each legacy reading that
        differs (`legacy_readings`). RFC 5322 allows one field, but a message may carry more
        and readers differ in which they show, and in how they join an encoded word to the
        text beside it, so a check of the Subject looks at each (`subject` is the first
        field as readers show it, for reports)."""
        shown = self.header_all("subject")
        legacy = [self.legacy_readings[n] for n, (key, _) in enumerate(self.headers)
                  if n in self.legacy_readings and key.lower() == "subject"]
        return shown + legacy if shown else [self.subject]

    def as_learned(self) -> "MessageView":
        """This view as the heuristic engine's model learned on it (core/scan/antispam/
        engine.py `features`): each top-level field in its legacy reading where that
        differs (`legacy_readings`), Subject included; and without the uuencoded blocks
        made parts (rule 5) and what they hold — the text still holds their lines, as when
        the model learned, and the features (the count of parts, the attachments' types)
        stay what they were. The parts are shared, not copied (their ids are then not their
        indexes); a view with neither is returned as it is."""
        written = set()
        for part in self.parts:
            if part.origin == "uuencode" or part.parent in written:
                written.add(part.id)
        if not self.legacy_readings and not written:
            return self
        parts = [p for p in self.parts if p.id not in written] if written else self.parts
        headers = [(key, self.legacy_readings.get(n, value))
                   for n, (key, value) in enumerate(self.headers)]
        subject = next((value for key, value in headers if key.lower() == "subject"),
                       self.subject) if self.legacy_readings else self.subject
        return replace(self, headers=headers, subject=subject, legacy_readings={},
                       parts=parts)

    def reread(self, raw: bytes) -> "MessageView":
        """The view of `raw` with this view's envelope, decomposed with the same settings
        (the heuristic engine's de-listed reading: core/scan/antispam/delist.py)."""
        from core.pipeline.decompose import decompose_bytes
        return decompose_bytes(raw, self.decompose_context, self.decompose_settings)

    def files(self) -> list[Part]:
        """Every part that is a file: attachments at any level, archive and TNEF members."""
        return [p for p in self.parts if p.id != 0 and not p.is_multipart
                and (p.is_attachment or p.origin != "mime")]

    def leaves(self) -> list[Part]:
        return [p for p in self.parts if not p.is_multipart]

    def text_parts(self) -> list[Part]:
        """Parts with decoded text: the message's text and HTML, and text attachments."""
        return [p for p in self.parts if p.text is not None]

    def body_text(self) -> str:
        """The decoded text of the text parts (HTML reduced to text), joined by newlines."""
        return "\n".join(p.text for p in self.parts if p.text is not None)

    def rules_text(self) -> str:
        """What content and spam rules read: `body_text()`, then the text of each HTML part
        that hides some of it, without what it hides (decompose/hidden.py) — a word split
        by hidden letters is found, and hidden text is still read, as a style sheet may show
        it again. The heuristic engine reads `body_text()` and the parts' `text`."""
        shown = [p.visible_text for p in self.parts if p.visible_text is not None]
        return "\n".join([self.body_text(), *shown]) if shown else self.body_text()

    def children(self, part_id: int) -> list[Part]:
        return [p for p in self.parts if p.parent == part_id]

    def ancestors(self, part_id: int) -> list[Part]:
        out, part = [], self.parts[part_id]
        while part.parent is not None:
            part = self.parts[part.parent]
            out.append(part)
        return out
