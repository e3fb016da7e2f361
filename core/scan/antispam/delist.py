"""The de-listed reading: a message a mailing list relayed, read as the list received it
(docs/antispam-model.md, "The de-listed reading (twenty-second session)" and "The guarded
de-listed reading (twenty-third session)").

What it owns
    A mailing list adds its own headers, Received hops, a Subject tag and a footer to every
    message it relays. They are evidence about the list — and most lists carry ham — so in
    the plain sum they offset the relayed message's own evidence: spam a list relayed was
    missed four times as often as spam sent directly (20 % against 3 % of the training
    part). `list_received(raw, boundaries)` is such a message as the list received it; the
    rest of the message — the author's own headers, hops, structure and text — is read as it
    came. The engine scores both readings and takes the larger (rule 7).

    Rev 7 (the twenty-second session's candidate) read relayed mail by rules 1-5 alone and was
    withdrawn for what a review found (review22a): a sender who writes a List-Id and a line
    naming the list near the end hid the body's last FOOTER_OCTETS; a forged list hop took
    the real hops off; a footer in a MIME part of its own was cut into a defect; the header
    end was not the decomposer's; a sender's header made the engine decompose a large message
    twice. A first mend ("delisted2", not shipped) was guarded by the reading with only the
    list's fields taken off; a second review (review23a) found that a sender's List-Id still
    took Return-Path off, whose absence the model had learned as list evidence, and that a
    footer could start in quoted text. Rules 2, 5, 7, 8 and 9 are the mends.

Rules
    1. Relayed: a List-Id, List-Post, X-BeenThere, X-Mailman-Version or Mailing-List field,
       or a Sender or Errors-To whose local part is a list's (owner-…, …-owner, …-admin,
       …-request, …-bounces). A List-Unsubscribe alone is not: a newsletter's own list
       manager is its sender, not a relay. Not relayed: None.
    2. The list's fields go: List-*, X-BeenThere, X-Mailman-*, Mailing-List, X-Loop,
       X-eGroups-*, X-Yahoo-*, Sender, Errors-To, Precedence, and the mbox "From " line.
       Return-Path and Delivered-To stay: the final delivery writes them on every message,
       relayed or not, and a gateway sees them on none (review23a R4).
    3. The list's hops go: the newest (topmost) Received field saying "for <NAME@" with
       NAME one of the list's names (X-BeenThere's and List-Post's local parts, List-Id's
       first label, a list Sender's or Errors-To's local part without owner-, -owner,
       -admin, -request, -bounces) is the list's receiving hop; the Received and
       X-Authentication-Warning fields above it go, it and the hops below stay. No such
       hop: every Received field stays.
    4. The Subject's first "[tag]" of at most 40 characters, after any "Re:", goes.
    5. The footer goes. In the last FOOTER_OCTETS of the body, a line naming the list
       (listinfo/NAME, NAME@, NAME-unsubscribe@, NAME-request@) starts it when no more than
       FOOTER_LINES non-blank lines and FOOTER_TAIL_OCTETS follow it, itself included, to
       the end of its part (the next delimiter line, or the end) — the first such line;
       or a separator line ("-- ", ten or more "_" or "-") among the three lines before it
       does, not across a delimiter line. A footer that begins its part's body (a MIME part
       of its own, as Mailman sends it) goes with the part's opening delimiter line and
       header; any other goes up to the next delimiter line, or to the end. Delimiter lines
       are "--" and a boundary of a multipart the decomposer found, with or without the
       closing "--"; nothing from the next delimiter line on is touched.
    6. Whether a set of definitions is read this way is the set's to say (its model's
       "scoring": {DELISTED_KEY: true}, definitions.py): a model learns the reading it was
       trained on. A change to these rules is a new reading and takes a new key, so that a
       Mailmoat with the old rules refuses a set trained on the new (review22c D1); the
       keys of the earlier readings, "delisted" and "delisted2", are refused.
    7. Guard: a relayed message is scored on this reading and on the message as it came,
       and the larger raw score counts (engine.readings). Nothing a sender adds — a list
       field, a forged list hop, a line that makes a "footer", a [tag] — then lowers a
       score below what the same weights give the message as it came. The model is trained
       on this reading.
    8. The header ends where the decomposer ends it (mime.split_header: at the blank line,
       or at the first line that is neither a field nor a fold), so no line the decomposer
       reads as text is taken for a field and dropped with it.
    9. A message over MAX_OCTETS, or whose reading as received hit a decomposition limit,
       is read as received only (engine.readings): no sender's header makes the engine
       decompose a large message again; lists relay messages of a few kilobytes. The
       container limits are the deployment's, so a gateway with lower ones than the
       defaults the training read with reads a little more relayed mail as received.
"""

from __future__ import annotations

import re

from core.pipeline.decompose.mime import split_header

__all__ = ["list_received", "header_fields", "FOOTER_OCTETS", "MAX_OCTETS", "DELISTED_KEY"]

DELISTED_KEY = "delisted3"      # rule 6

FOOTER_OCTETS = 1500
# rule 5: a Mailman footer is a separator and three lines, Yahoo's a few more
FOOTER_LINES = 6
FOOTER_TAIL_OCTETS = 600
MAX_OCTETS = 1024 * 1024        # rule 9

_LIST_FIELDS = frozenset((b"list-id", b"list-post", b"x-beenthere", b"x-mailman-version",
                          b"mailing-list"))
_LIST_LOCAL = re.compile(rb"^(?:owner-)?(.+?)(?:-owner|-admin|-request|-bounces)?$", re.I)
# Every pattern here reads what a sender wrote, so none may backtrack without bound: each
# run of characters is scanned from its start only (`(?<!...)`, classes that stop where a
# next start may be), and no two repeats can take the same white space (_TAG)
_LIST_SENDER = re.compile(
    rb"(?i)(?:^|[<\s\"])(?:owner-[^@\s<>\"]+|[^@\s<>\"]+-(?:owner|admin|request|bounces))@")
_DROP = frozenset((b"x-beenthere", b"mailing-list", b"x-loop", b"sender", b"errors-to",
                   b"precedence"))
_DROP_PREFIXES = (b"list-", b"x-mailman-", b"x-egroups-", b"x-yahoo-")
_ADDRESS = re.compile(rb"(?<![^<>\s\"':,])([^<>\s\"':,]+)@([\w.-]+)")
_LIST_ID = re.compile(rb"<([^.<>\s]+)\.")
_SEPARATOR = re.compile(rb"^(?:-- ?|_{10,}|-{10,})\s*$")
_TAG = re.compile(rb"^(\s*(?:re\s*:\s*)*)\[[^\]\n]{1,40}\]\s*", re.I)
# a list has a name or two (its address, its id); more are no list's, and each costs a
# search of the hops and the footer
MAX_LIST_NAMES = 8
MAX_LOCAL_PART = 64             # octets, RFC 5321 section 4.5.3.1.1


def list_received(raw: bytes, boundaries=()) -> bytes | None:
    """The message as the list received it (rules 2-5), or None when no list relayed it
    (rule 1). `boundaries`: the boundaries of the multiparts the decomposer found (rule 5)."""
    message = raw.replace(b"\r\n", b"\n")
    if not any(_is_list_field(field)          # rule 1 on the longest header there can be,
               for field in header_fields(message.partition(b"\n\n")[0])):   # cheaply
        return None
    head, sep, body = _header_and_body(message)
    fields = header_fields(head)
    if not any(_is_list_field(field) for field in fields):
        return None
    names = _list_names(fields)
    first_kept = _list_hop(fields, names)
    kept = []
    for index, field in enumerate(fields):
        name = _name(field)
        if name in _DROP or name.startswith(_DROP_PREFIXES):
            continue
        if (name in (b"received", b"x-authentication-warning") and first_kept is not None
                and index < first_kept):
            continue
        kept.append(_untagged(field) if name == b"subject" else field)
    if names and body:
        body = _without_footer(body, names, boundaries)
    return b"\n".join(kept) + sep + body


def _header_and_body(message: bytes) -> tuple[bytes, bytes, bytes]:
    """(header, what ends it, body) of an LF message, the header ending where the decomposer
    ends it (rule 8)."""
    body_start = split_header(message, 0, len(message)).body_start
    head = message[:body_start]
    if head.endswith(b"\n\n"):
        return head[:-2], b"\n\n", message[body_start:]
    if head.endswith(b"\n"):
        return head[:-1], b"\n", message[body_start:]
    return head, b"", message[body_start:]


def header_fields(head: bytes) -> list[bytes]:
    """The fields of a header block (LF line ends), each with its continuation lines, without
    an mbox "From " line."""
    lines = head.split(b"\n")
    if lines and lines[0].startswith(b"From "):          # the mbox separator (rule 2)
        lines = lines[1:]
    fields: list[list[bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)         # joined once: a field of many lines stays linear
        else:
            fields.append([line])
    return [b"\n".join(field) for field in fields]


def _name(field: bytes) -> bytes:
    return field.partition(b":")[0].strip().lower()


def _value(field: bytes) -> bytes:
    return field.partition(b":")[2]


def _is_list_field(field: bytes) -> bool:
    """Rule 1."""
    name = _name(field)
    return name in _LIST_FIELDS or (name in (b"sender", b"errors-to")
                                    and _LIST_SENDER.search(_value(field)) is not None)


def _list_names(fields: list[bytes]) -> list[bytes]:
    """Rule 3's NAMEs: of two characters or more, and no longer than a local part may be."""
    names: set[bytes] = set()
    for field in fields:
        name, value = _name(field), _value(field)
        if name in (b"x-beenthere", b"list-post"):
            names.update(local.lower().removeprefix(b"mailto:")
                         for local, _ in _ADDRESS.findall(value))
        elif name == b"list-id":
            match = _LIST_ID.search(value)
            if match:
                names.add(match.group(1).lower())
        elif name in (b"sender", b"errors-to") and _LIST_SENDER.search(value):
            for local, _ in _ADDRESS.findall(value):
                match = _LIST_LOCAL.match(local.lower())
                if match:
                    names.add(match.group(1))
    return sorted(name for name in names if 2 <= len(name) <= MAX_LOCAL_PART)[:MAX_LIST_NAMES]


def _alternatives(names: list[bytes]) -> bytes:
    return b"|".join(re.escape(name) for name in names)


def _list_hop(fields: list[bytes], names: list[bytes]) -> int | None:
    """Rule 3: the index of the list's receiving hop, or None."""
    if not names:
        return None
    for_list = re.compile(rb"(?i)\bfor\s+<(?:" + _alternatives(names) + rb")@")
    return next((index for index, field in enumerate(fields)
                 if _name(field) == b"received" and for_list.search(field)), None)


def _untagged(field: bytes) -> bytes:
    """Rule 4."""
    name, colon, value = field.partition(b":")
    value = _TAG.sub(lambda m: b" " + (m.group(1).strip() + b" " if m.group(1).strip()
                                       else b""), value, count=1)
    return name + colon + value.rstrip(b" ") if value.strip() else name + colon


def _without_footer(body: bytes, names: list[bytes], boundaries) -> bytes:
    """Rule 5. Only the lines that start in the last FOOTER_OCTETS are split and searched:
    the whole body split into lines took some 26 times its size in memory (review22a R2)."""
    tail_start = max(0, len(body) - FOOTER_OCTETS)
    cut = 0 if tail_start == 0 else body.find(b"\n", tail_start - 1) + 1
    if tail_start and cut == 0:
        return body                          # no line starts in the tail
    lines = body[cut:].split(b"\n")
    is_delimiter = _delimiter_test(boundaries)
    first = _footer_line(lines, names, is_delimiter)
    if first is None:
        return body
    start = first
    for index in range(first - 1, max(-1, first - 4), -1):
        if is_delimiter(lines[index]):
            break
        if _SEPARATOR.match(lines[index]):
            start = index
            break
    end = next((index for index in range(start + 1, len(lines))
                if is_delimiter(lines[index])), len(lines))
    opening = next((index for index in range(start - 1, -1, -1)
                    if is_delimiter(lines[index])), None)
    if (opening is not None and not _is_closing(lines[opening])
            and _begins_body(lines[opening + 1:start])):
        start = opening                      # a part of its own: it goes whole
    kept = lines[:start] + lines[end:]
    text = b"\n".join(kept) + (b"\n" if kept and end == len(lines) else b"")
    return body[:cut] + text


def _footer_line(lines: list[bytes], names: list[bytes], is_delimiter) -> int | None:
    """Rule 5: the index of the first line naming the list with no more than FOOTER_LINES
    non-blank lines and FOOTER_TAIL_OCTETS after it, itself included, to its part's end."""
    either = _alternatives(names)
    naming = re.compile(rb"(?i)(?:listinfo/(?:%s)\b|(?:%s)(?:-unsubscribe|-request)?@)"
                        % (either, either))
    # one pass from the end: what follows each line to its part's end
    following_lines = following_octets = 0
    fits = [False] * len(lines)
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if is_delimiter(line):
            following_lines = following_octets = 0
            continue
        following_lines += bool(line.strip())
        following_octets += len(line) + 1
        fits[index] = (following_lines <= FOOTER_LINES
                       and following_octets <= FOOTER_TAIL_OCTETS)
    return next((index for index, line in enumerate(lines)
                 if fits[index] and naming.search(line)), None)


def _delimiter_test(boundaries):
    """Whether a line is a delimiter line of one of `boundaries` (rule 5)."""
    delimiters = {b"--" + boundary.encode("utf-8", "surrogateescape").rstrip(b" \t")
                  for boundary in boundaries}

    def is_delimiter(line: bytes) -> bool:
        line = line.rstrip(b" \t\r")
        return line in delimiters or (line.endswith(b"--") and line[:-2] in delimiters)
    return is_delimiter


def _is_closing(delimiter: bytes) -> bool:
    return delimiter.rstrip(b" \t\r").endswith(b"--")


def _begins_body(lines: list[bytes]) -> bool:
    """Whether the lines between a delimiter line and the footer are a part header and the
    blank line after it, with only blank lines then."""
    blank = next((index for index, line in enumerate(lines) if not line.strip()), None)
    return blank is not None and all(not line.strip() for line in lines[blank:])
