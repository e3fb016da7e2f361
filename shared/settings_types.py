"""Value kinds of the settings schema: how one setting's value is checked and normalised.

Each kind is a small immutable object with `check(value) -> normalised value`, raising
`RuleError(rule)` with the rule in words ("must be between 1 and 65535"). The schema in
`shared.settings` wraps the rule with the key, so every message reads `KEY: rule`.

Kinds never look at other settings; rules that span keys live in `shared.settings_cross_rules`.
Values are plain JSON data (str, int, bool, list, dict, None) so the database, the CLI,
the console and the core's snapshot all hold the same thing.

This module has the error, the base kind and the plain kinds (numbers, text, choices,
lists, times); names on the network (domains, addresses, hosts, relay and sender-list
entries) are in `shared.settings_addresses`, and the structured entries of routing, rules
and RBL zones in `shared.settings_entries`.
"""

from __future__ import annotations

import collections
import functools
import json
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any

from shared.shown_text import NOT_IN_HEADER_TEXT

__all__ = [
    "RuleError", "Kind", "Bool", "Int", "Str", "Template", "AbsolutePath", "UpdateSource",
    "Choice", "ListOf",
    "Nullable", "TimeOfDay", "Timezone", "Extension", "Pattern", "Weekday", "Base64Key",
    "Characters",
    "checked_fields", "plain_object", "entries_rule", "integer_from_text", "check_encodable",
    "without_surrogates", "loads_stored", "INTEGER_MAX_DIGITS", "ENTRIES_NAMED", "zone_names",
    "NOT_PLACE_ZONES",
]


class RuleError(ValueError):
    """The value breaks a rule; `rule` is the rule in words, without the key.

    The parts it was made of, for a caller that shows the value otherwise than as JSON (the
    console: a list as one entry per text-area line, a rule's terms as one comma-separated
    line) and so must number or place the message its own way:
    - `entries`: a list's bad entries as (position from 1, their RuleError), in order. An
      entry equal to an earlier one is bad (its rule says which one it repeats), and that
      earlier entry is listed too, so a caller that numbers the entries its own way numbers
      the one a repeat names; `entries_rule` words the two together ("line 4 repeats line 2");
    - `field` and `inner`: the object field the rule is about and its own error (`within`);
    - `fields`: those errors (each with `field` and `inner`) when several fields of one
      object break their rules; `field_errors` gives them whether one field or several.
    """

    def __init__(self, rule: str, *, entries: tuple[tuple[int, RuleError], ...] = (),
                 field: str | None = None, inner: RuleError | None = None,
                 fields: tuple[RuleError, ...] = ()):
        super().__init__(rule)
        self.rule = rule
        self.entries = entries
        self.field = field
        self.inner = inner
        self.fields = fields

    def within(self, field: str) -> RuleError:
        """This error as that of the object field `field`: "field: rule"."""
        return RuleError(f"{field}: {self.rule}", field=field, inner=self)

    @property
    def field_errors(self) -> tuple[RuleError, ...]:
        """The errors of the object's fields that break their rules (each with `field` and
        `inner`), in the object's field order; () when the rule is not about a field."""
        return self.fields or ((self,) if self.field is not None else ())


class _Repeat(str):
    """The rule of a list entry equal to the earlier entry `first` (position from 1), or,
    with `is_first`, of that earlier entry itself: listed among the bad entries only so that
    the repeat's message can name it by the number the caller gives it (`entries_rule`)."""

    first: int
    is_first: bool
    note: str | None

    @classmethod
    def of(cls, first: int, *, is_first: bool = False, note: str | None = None) -> _Repeat:
        """`note`: why it repeats `first` though spelled otherwise (`Kind.repeat_note`)."""
        rule = cls("is repeated by a later entry" if is_first
                   else f"repeats entry {first}" + (f": {note}" if note else ""))
        rule.first, rule.is_first, rule.note = first, is_first, note
        return rule


ENTRIES_NAMED = 10  # a message names at most this many bad entries, then "and K more"
_PLURALS = {"entry": "entries"}


def _plural(unit: str, count: int) -> str:
    return unit if count == 1 else _PLURALS.get(unit, unit + "s")


def _numbers(numbers: list[int]) -> str:
    words = [str(n) for n in numbers]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def entries_rule(bad: list[tuple[int, str]], unit: str = "entry") -> str:
    """The rules a list's bad entries break, in one message — the one place that words it.

    `bad` is [(number, rule)] in order, the rules those of RuleError.entries; `unit` says
    what the numbers count: "entry" (the position in the list), "line" (the console's text
    areas), "term". Entries breaking the same rule are named together, and so are the
    entries repeating the same earlier one, after the broken rules; after ENTRIES_NAMED
    entries the rest are counted: "entry 2: rule", "lines 2, 5 and 9: rule; line 12: other rule; lines 4 and 7
    repeat line 1; and 3 more lines".
    """
    firsts = {rule.first: number for number, rule in bad
              if isinstance(rule, _Repeat) and rule.is_first}
    shown = [(number, rule) for number, rule in bad
             if not (isinstance(rule, _Repeat) and rule.is_first)]
    # broken rules before repeats: in a long pasted list the one malformed entry must not
    # hide behind ENTRIES_NAMED repeats
    shown.sort(key=lambda item: isinstance(item[1], _Repeat))
    named: dict[tuple[bool, Any], list[int]] = {}
    for number, rule in shown[:ENTRIES_NAMED]:
        key = (True, (firsts.get(rule.first, rule.first), rule.note)) \
            if isinstance(rule, _Repeat) else (False, rule)
        named.setdefault(key, []).append(number)
    parts = []
    for (is_repeat, what), numbers in named.items():
        if is_repeat:
            verb = "repeats" if len(numbers) == 1 else "repeat"
            first, note = what
            parts.append(f"{_plural(unit, len(numbers))} {_numbers(numbers)} {verb} {unit} "
                         f"{first}" + (f": {note}" if note else ""))
        else:
            parts.append(f"{_plural(unit, len(numbers))} {_numbers(numbers)}: {what}")
    rest = len(shown) - ENTRIES_NAMED
    if rest > 0:
        parts.append(f"and {rest} more {_plural(unit, rest)}")
    return "; ".join(parts)


# Python's int() and the regular expression \d take every Unicode decimal digit, so "٣"
# (Arabic-Indic) or "５" (fullwidth) would read as 3 or 5. A setting's number is written with
# the ASCII digits, as JSON writes numbers (RFC 8259 §6).
_INTEGER_TEXT = re.compile(r"([+-]?)([0-9]+)\Z")
# A number of more digits than this (leading zeros aside) is beyond every setting's range;
# it is read as ±10**INTEGER_MAX_DIGITS, so that the range is its rule, without asking int()
# to read thousands of digits (Python refuses more than 4300: sys.get_int_max_str_digits).
INTEGER_MAX_DIGITS = 64


def integer_from_text(text: str) -> int | None:
    """The whole number `text` writes (ASCII digits, an optional sign, spaces around; past
    INTEGER_MAX_DIGITS digits ±10**INTEGER_MAX_DIGITS, out of every range), or None: a form
    or the command line then hands the text itself to `Int.check`, whose rule is the
    message."""
    match = _INTEGER_TEXT.match(text.strip())
    if match is None:
        return None
    sign, digits = match[1], match[2].lstrip("0") or "0"
    number = int(digits) if len(digits) <= INTEGER_MAX_DIGITS else 10 ** INTEGER_MAX_DIGITS
    return -number if sign == "-" else number


# A lone UTF-16 surrogate (U+D800..U+DFFF) is valid JSON ("\ud800", half of a character a
# script cut in two) and a Python string holds it, but no UTF-8 text can: the mail it would go
# into, a page, `config get` would fail on it (settings finding 1).
_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_rule(text: str) -> str | None:
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return (f"must be valid Unicode text: \\u{ord(found[0]):04x} is half of a character "
            "(a lone UTF-16 surrogate)")


def check_encodable(value: Any) -> None:
    """RuleError when a text anywhere in `value` (a JSON value: its strings, list entries and
    object fields and their names, at any depth) holds a lone surrogate, naming where, as the
    kinds name a list's entry or an object's field: "entry 2: terms: entry 1: must be ...".
    Settings' values are checked so before their kinds see them (shared.settings
    `validate_changes`), so no kind, and nothing that reads a stored value, meets one. Walks
    without recursion: a value nested thousands deep is refused by its kind, not by Python's
    stack."""
    stack: list[tuple[Any, tuple]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            rule = _surrogate_rule(item)
            if rule is not None:
                raise _located(RuleError(rule), path)
        elif isinstance(item, list):
            stack.extend((entry, (*path, index))
                         for index, entry in reversed(list(enumerate(item, 1))))
        elif isinstance(item, dict):
            for name, field in reversed(list(item.items())):
                rule = _surrogate_rule(name) if isinstance(name, str) else None
                if rule is not None:
                    raise _located(RuleError(f"a field name {rule}"), path)
                stack.append((field, (*path, name)))


def _located(error: RuleError, path: tuple) -> RuleError:
    """`error`, about the part of a value at `path` (list positions from 1, field names), as
    the error of the whole value."""
    for step in reversed(path):
        if isinstance(step, int):
            error = RuleError(entries_rule([(step, error.rule)]), entries=((step, error),))
        else:
            error = error.within(step)
    return error


# A UTF-16 surrogate as json.dumps escapes it: half of a pair that writes a character beyond
# U+FFFF (json.loads joins the pair), or a lone one (`loads_stored`).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads_stored(text: str) -> Any:
    """`json.loads(text)` for JSON an older release stored with json.dumps' defaults (ASCII,
    so a lone surrogate is kept as its escape), each lone surrogate read as U+FFFD
    (`without_surrogates`). The one reader of such text: settings (shared/settings_store.py
    `load`) and events' data (shared/report_format.py `event_data`). Raises ValueError as
    json.loads does."""
    value = json.loads(text)
    if _SURROGATE_ESCAPE.search(text):      # or only a character beyond U+FFFF
        value = without_surrogates(value)
    return value


def without_surrogates(value: Any) -> Any:
    """`value` with every lone surrogate in its texts replaced by U+FFFD, as a UTF-8 decoder
    replaces what it cannot read: how a value an older release stored before surrogates were
    refused (check_encodable) is read (shared/settings_store.py `load`), so the mail, the
    pages and `config get` that use it do not fail on it. Other values are returned as they
    are."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [without_surrogates(entry) for entry in value]
    if isinstance(value, dict):
        return {without_surrogates(name): without_surrogates(field)
                for name, field in value.items()}
    return value


class Kind:
    """Base of all kinds. `describe()` is the type as shown in docs/settings.md."""

    def check(self, value: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def same_form(self, value: Any) -> Any:
        """What two checked values that are the same entry of a list have in common (a list
        refuses the second, `ListOf.unique`): the value itself, unless the kind says that
        two spellings mean one thing."""
        return repr(value)

    def repeat_note(self, value: Any, first: Any) -> str | None:
        """Why `value` repeats `first` though they differ (`same_form` equal), for the
        repeat's message; None when the message says enough."""
        return None

    @property
    def is_text(self) -> bool:
        """True when a bare CLI argument is the value itself, not JSON (SPEC §2)."""
        return False


@dataclass(frozen=True)
class Bool(Kind):
    def check(self, value):
        if not isinstance(value, bool):
            raise RuleError("must be true or false")
        return value

    def describe(self):
        return "boolean"


@dataclass(frozen=True)
class Int(Kind):
    min: int
    max: int
    also: tuple[int, ...] = ()  # single values allowed outside the range (0 = never, …)

    def check(self, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise RuleError("must be a whole number written with the digits 0-9"
                            + (" and an optional sign" if self.min < 0 else ""))
        if value in self.also:
            return value
        if not self.min <= value <= self.max:
            extra = "".join(f" or {v}" for v in self.also)
            raise RuleError(f"must be between {self.min} and {self.max}{extra}")
        return value

    def describe(self):
        extra = "".join(f" or {v}" for v in self.also)
        return f"integer {self.min}..{self.max}{extra}"


@dataclass(frozen=True)
class Str(Kind):
    """Text. `header`: it becomes header text of mail (a Subject, a prefix to one), so no
    control character but tab, no line or paragraph separator and no text-direction
    embedding or override goes with it: they go raw into the header, where a receiving
    server may refuse or mangle them, and an override reverses how the rest of the line
    reads (shared/shown_text.py NOT_IN_HEADER_TEXT)."""
    max_len: int = 10_000
    min_len: int = 0
    multiline: bool = False
    header: bool = False

    def check(self, value):
        if not isinstance(value, str):
            raise RuleError("must be a text string")
        if len(value) > self.max_len:
            raise RuleError(f"must be at most {self.max_len} characters")
        if len(value) < self.min_len:
            raise RuleError("must not be empty" if self.min_len == 1
                            else f"must be at least {self.min_len} characters")
        if not self.multiline and ("\n" in value or "\r" in value):
            raise RuleError("must be a single line")
        if "\x00" in value:
            raise RuleError("must not contain NUL characters")
        if self.header:
            bad = NOT_IN_HEADER_TEXT.search(value)
            if bad:
                raise RuleError(f"must not contain control or text-direction characters "
                                f"(U+{ord(bad.group()):04X}, character {bad.start() + 1})")
        return value

    def describe(self):
        return f"text (≤{self.max_len} chars{', header text' if self.header else ''})"

    @property
    def is_text(self):
        return True


# A metatag as core/notify.py `fill_metatags` replaces it: ${NAME}, or $ {NAME} as the guide
# prints it (§3 "Understanding notifications")
_METATAG = re.compile(r"\$ ?\{([^{}\n]*)\}")
# the guide's own misprint ("do not alter the metatags ({$MSGINFO}, for example)")
_METATAG_MISPRINT = re.compile(r"\{\$ ?([^{}$\n]*)\}")


def _tag_list(names: tuple[str, ...]) -> str:
    tags = ["${" + name + "}" for name in names]
    return tags[0] if len(tags) == 1 else ", ".join(tags[:-1]) + " and " + tags[-1]


@dataclass(frozen=True)
class Template(Str):
    """A text mail is made of, with `${NAME}` metatags its sender fills (`tags`, the only
    ones it knows). A text left empty, or a tag it does not know, would be mailed as it is —
    a blank notification, a literal "${FOO}" — so both are refused, naming the tags it
    takes (tester guide36, finding 6)."""

    tags: tuple[str, ...] = ()

    def check(self, value):
        value = super().check(value)
        if not value.strip():
            raise RuleError("must not be empty: the mail would go without it")
        problems = []
        for written in dict.fromkeys(_METATAG_MISPRINT.findall(value)):
            problems.append(self._problem("{$" + written + "}", written))
        for written in dict.fromkeys(_METATAG.findall(value)):
            if written not in self.tags:
                problems.append(self._problem("${" + written + "}", written))
        if problems:
            takes = _tag_list(self.tags) if self.tags else "none"
            raise RuleError(f"{'; '.join(problems)} (this text takes {takes})")
        return value

    def _problem(self, tag: str, written: str) -> str:
        name = written.strip().upper()
        if name in self.tags:                       # {$MSGINFO}, ${msginfo}, ${ MSGINFO }
            return f"{tag} is written ${{{name}}}"
        return f"{tag} is not a metatag of this text"


@dataclass(frozen=True)
class AbsolutePath(Str):
    """A directory or file named from the root: the core and the console, started from
    different working directories, must mean the same place. With `or_empty`, "" too (the
    key's help says what it means)."""

    or_empty: bool = False

    def check(self, value):
        value = super().check(value)
        if not value.startswith("/") and not (self.or_empty and value == ""):
            raise RuleError("must be an absolute path (starting with /)"
                            + (", or empty" if self.or_empty else ""))
        return value

    def describe(self):
        return "absolute path" + (" or empty" if self.or_empty else "")


@dataclass(frozen=True)
class UpdateSource(Str):
    """liveupdate.source (SPEC §3): an https or http URL, or a local directory (an absolute
    path, as AbsolutePath says why), or "" for none."""

    def check(self, value):
        value = super().check(value)
        if value == "" or value.startswith("/"):
            return value
        from urllib.parse import urlsplit

        try:
            url = urlsplit(value)
        except ValueError:                  # an unbalanced [ in the host
            url = None
        # urlsplit drops leading control characters; refused, or the credentials' mask
        # (shared.settings display_value), which reads from the first one, missed them
        if url is None or url.scheme.lower() not in ("http", "https") or not url.hostname \
                or any(c.isspace() or not c.isprintable() for c in value):
            raise RuleError("must be an https:// or http:// URL, or a local directory's "
                            "absolute path (starting with /)")
        return value

    def describe(self):
        return "http(s) URL or absolute path, or empty"


@dataclass(frozen=True)
class Choice(Kind):
    """One of `choices`. `withheld` are choices the kind lets in, as an older release may
    have stored them, that a cross rule refuses for now (the spam quarantine not built): the
    rule and docs/settings.md list only the others, so a typo is not sent to a value that is
    then refused (settings20 B2)."""
    choices: tuple[str, ...]
    withheld: tuple[str, ...] = ()

    @property
    def offered(self) -> tuple[str, ...]:
        return tuple(choice for choice in self.choices if choice not in self.withheld)

    def check(self, value):
        if value not in self.choices:
            raise RuleError("must be one of " + ", ".join(self.offered))
        return value

    def describe(self):
        return "one of " + " | ".join(self.offered)

    @property
    def is_text(self):
        return True


@dataclass(frozen=True)
class Nullable(Kind):
    inner: Kind

    def check(self, value):
        return None if value is None else self.inner.check(value)

    def describe(self):
        return f"null or {self.inner.describe()}"

    @property
    def is_text(self):
        return self.inner.is_text


@dataclass(frozen=True)
class ListOf(Kind):
    item: Kind
    max_items: int = 10_000
    min_items: int = 0
    unique: bool = True

    def check(self, value):
        if not isinstance(value, list):
            raise RuleError("must be a list")
        if len(value) > self.max_items:
            raise RuleError(f"must have at most {self.max_items} "
                            f"{_plural('entry', self.max_items)}")
        if len(value) < self.min_items:
            raise RuleError(f"must have at least {self.min_items} "
                            f"{_plural('entry', self.min_items)}")
        out, bad, first_at = [], [], {}
        for index, item in enumerate(value, 1):
            try:
                checked = self.item.check(item)
            except RuleError as exc:
                bad.append((index, exc))
                continue
            out.append(checked)
            if self.unique:                      # every repeat, named with its first entry
                first = first_at.setdefault(self.item.same_form(checked), index)
                if first != index:
                    note = self.item.repeat_note(checked, value[first - 1])
                    bad.append((index, RuleError(_Repeat.of(first, note=note))))
        if bad:                                  # every bad entry, not only the first
            firsts = {exc.rule.first for _index, exc in bad if isinstance(exc.rule, _Repeat)}
            bad = sorted(bad + [(first, RuleError(_Repeat.of(first, is_first=True)))
                                for first in firsts], key=lambda pair: pair[0])
            raise RuleError(entries_rule([(index, exc.rule) for index, exc in bad]),
                            entries=tuple(bad))
        return out

    def describe(self):
        counts = f"{self.min_items}..{self.max_items}" if self.min_items \
            else f"≤{self.max_items}"
        return f"list of {self.item.describe()} ({counts} entries)"


@dataclass(frozen=True)
class TimeOfDay(Kind):
    def check(self, value):
        if not isinstance(value, str) or not re.match(r"^([01]\d|2[0-3]):[0-5]\d\Z", value):
            raise RuleError("must be a time of day HH:MM (00:00 to 23:59)")
        return value

    def describe(self):
        return "HH:MM"

    @property
    def is_text(self):
        return True


_ZONE_RULE = "must be an IANA time zone name such as Europe/Berlin"
# Names the zoneinfo database of this host lists that name no place's time (SPEC §3: the
# timezone is an "IANA name"), with the reason the message gives. `localtime` is a link to
# the machine's own setting (Debian's /usr/share/zoneinfo/localtime), not an IANA name, and
# means another zone on another host; IANA's `Factory` marks a machine whose zone was never
# set, and shows every time as "-00". Backward-compatible links (US/Eastern, Zulu) are IANA
# names of real zones, and stay.
NOT_PLACE_ZONES = {
    "localtime": "localtime is this machine's own setting, not an IANA name: choose the zone "
                 "it stands for",
    "Factory": "Factory is IANA's mark for a machine whose time zone is not set (times "
               "show as -00): choose a zone",
}


@functools.cache
def zone_names() -> tuple[str, ...]:
    """The names `Timezone` takes, sorted: the IANA names of this host's zoneinfo database
    (its directories and the `tzdata` package), without NOT_PLACE_ZONES: the list a form
    offers."""
    return tuple(sorted(set(zoneinfo.available_timezones()) - NOT_PLACE_ZONES.keys()))


@dataclass(frozen=True)
class Timezone(Kind):
    """An IANA time zone name. Only a name the database lists as a zone: ZoneInfo also
    loads `posixrules` and the `posix/` and `right/` copies of the tree, which are file
    names, not IANA names (and `right/` zones count leap seconds)."""

    def check(self, value):
        if not isinstance(value, str):
            raise RuleError(_ZONE_RULE)
        if value in NOT_PLACE_ZONES:
            raise RuleError(f"{_ZONE_RULE}; {NOT_PLACE_ZONES[value]}")
        if value not in zone_names():
            raise RuleError(_ZONE_RULE)
        return value

    def describe(self):
        return "IANA time zone (not " + " or ".join(NOT_PLACE_ZONES) + ")"

    @property
    def is_text(self):
        return True


@dataclass(frozen=True)
class Extension(Kind):
    def check(self, value):
        if not isinstance(value, str) or not re.match(r"^\.[A-Za-z0-9_~-]{1,32}\Z", value):
            raise RuleError("must be a file extension written .ext")
        return value.lower()

    def describe(self):
        return ".ext"


@dataclass(frozen=True)
class Pattern(Kind):
    """A subject line or file name pattern with `*`/`?` wildcards."""

    max_len: int = 255

    def check(self, value):
        value = Str(max_len=self.max_len, min_len=1).check(value)
        return value

    def same_form(self, value):
        # Matched regardless of letter case and without the spaces around it (shared/
        # wildcard.py: re.IGNORECASE, and both callers strip a pattern), so "*.EXE" repeats
        # "*.exe". Lower case, not casefold(), as RuleTerm says why.
        return value.strip().lower()

    def repeat_note(self, value, first):
        # "line 2 repeats line 1" of "cheap PILLS*" after "Cheap pills*" did not say why
        # (upgrade17 C4)
        if value.strip() != first.strip():
            return "letter case is ignored"
        return "spaces around it are ignored" if value != first else None

    def describe(self):
        return "pattern (* and ? wildcards)"


@dataclass(frozen=True)
class Weekday(Kind):
    DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

    def check(self, value):
        return Choice(self.DAYS).check(value)

    def describe(self):
        return "weekday mon..sun"


@dataclass(frozen=True)
class Base64Key(Kind):
    def check(self, value):
        import base64
        import binascii
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise RuleError("must be a base64 Ed25519 public key") from None
        if len(raw) != 32:
            raise RuleError("must be a base64 Ed25519 public key (32 bytes)")
        return value

    def describe(self):
        return "base64 Ed25519 public key"


def checked_fields(checks: list[tuple[str, Kind, Any]]) -> dict:
    """{field: its checked value} of an object's (field, kind, value) checks; RuleError
    naming every field that breaks its kind's rule, not only the first (`field_errors`)."""
    out, bad = {}, []
    for name, kind, value in checks:
        try:
            out[name] = kind.check(value)
        except RuleError as exc:
            bad.append(exc.within(name))
    if len(bad) == 1:
        raise bad[0]
    if bad:
        raise RuleError("; ".join(exc.rule for exc in bad), fields=tuple(bad))
    return out


def plain_object(value, required: set[str], optional: set[str]) -> dict:
    """`value` as a dict, when it is an object with every `required` field and no field
    outside `required` and `optional`."""
    if not isinstance(value, dict):
        raise RuleError("must be an object")
    unknown = set(value) - required - optional
    if unknown:
        raise RuleError(f"unknown field {sorted(unknown)[0]!r}")
    missing = required - set(value)
    if missing:
        raise RuleError(f"field {sorted(missing)[0]!r} is required")
    return dict(value)


@dataclass(frozen=True)
class Characters(Str):
    """A set of characters written one after the other (guide §6: "Do not insert spaces or
    commas"): a space or a comma in it would be refused as a character too."""

    def check(self, value):
        value = super().check(value)
        if any(c.isspace() or c == "," for c in value):
            raise RuleError("must list the characters one after the other, without spaces "
                            "or commas")
        twice = [c for c, count in collections.Counter(value).items() if count > 1]
        if twice:
            raise RuleError(f"must list each character once: {''.join(twice)} "
                            f"{'is' if len(twice) == 1 else 'are'} listed more than once")
        return value
