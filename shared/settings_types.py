"""Value kinds of the settings schema: how one setting's value is checked and normalised.

Each kind is a small immutable object with `check(value) -> normalised value`, raising
`RuleError(rule)` with the rule in words ("must be between 1 and 65535"). The schema in
`shared.settings` wraps the rule with the key, so every message reads `KEY: rule`.

Kinds never look at other settings; rules that span keys live in `shared.settings`.
Values are plain JSON data (str, int, bool, list, dict, None) so the database, the CLI,
the console and the core's snapshot all hold the same thing.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any

from shared.dnsxl import ERROR_CODE_NET, LISTING_NET
from shared.idn import ascii_domain, ascii_pattern, entry_form

__all__ = [
    "RuleError", "Kind", "Bool", "Int", "Str", "AbsolutePath", "Choice", "ListOf", "Nullable", "Email",
    "Sender", "IpAddress", "Resolver", "Hostname", "ServerName", "TimeOfDay", "Timezone", "Extension",
    "HostPort", "ClamdAddress", "Characters",
    "RoutingEntry", "Rule", "RblZone", "WhitelistEntry", "BlacklistEntry",
    "RelayEntry", "Weekday", "Base64Key", "Domain", "MailDomain", "Pattern", "ListingAnswer",
    "RuleTerm", "RuleTerms", "entries_rule", "integer_from_text", "INTEGER_MAX_DIGITS",
    "ENTRIES_NAMED",
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

    @classmethod
    def of(cls, first: int, *, is_first: bool = False) -> _Repeat:
        rule = cls("is repeated by a later entry" if is_first else f"repeats entry {first}")
        rule.first, rule.is_first = first, is_first
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
        key = (True, firsts.get(rule.first, rule.first)) if isinstance(rule, _Repeat) \
            else (False, rule)
        named.setdefault(key, []).append(number)
    parts = []
    for (is_repeat, what), numbers in named.items():
        if is_repeat:
            verb = "repeats" if len(numbers) == 1 else "repeat"
            parts.append(f"{_plural(unit, len(numbers))} {_numbers(numbers)} {verb} {unit} {what}")
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
    max_len: int = 10_000
    min_len: int = 0
    multiline: bool = False

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
        return value

    def describe(self):
        return "text" + (f" (≤{self.max_len} chars)" if self.max_len < 10_000 else "")

    @property
    def is_text(self):
        return True


@dataclass(frozen=True)
class AbsolutePath(Str):
    """A directory or file named from the root: the core and the console, started from
    different working directories, must mean the same place."""

    def check(self, value):
        value = super().check(value)
        if not value.startswith("/"):
            raise RuleError("must be an absolute path (starting with /)")
        return value

    def describe(self):
        return "absolute path"


@dataclass(frozen=True)
class Choice(Kind):
    choices: tuple[str, ...]

    def check(self, value):
        if value not in self.choices:
            raise RuleError("must be one of " + ", ".join(self.choices))
        return value

    def describe(self):
        return "one of " + " | ".join(self.choices)

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
            raise RuleError(f"must have at most {self.max_items} entries")
        if len(value) < self.min_items:
            raise RuleError(f"must have at least {self.min_items} entries")
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
                    bad.append((index, RuleError(_Repeat.of(first))))
        if bad:                                  # every bad entry, not only the first
            firsts = {exc.rule.first for _index, exc in bad if isinstance(exc.rule, _Repeat)}
            bad = sorted(bad + [(first, RuleError(_Repeat.of(first, is_first=True)))
                                for first in firsts], key=lambda pair: pair[0])
            raise RuleError(entries_rule([(index, exc.rule) for index, exc in bad]),
                            entries=tuple(bad))
        return out

    def describe(self):
        return f"list of {self.item.describe()}"


_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"
# `\Z`, not `$`: `$` also matches before a trailing newline, which would let "example.com\n"
# through into SMTP commands and headers.
_DOMAIN_RE = re.compile(r"^(?=.{1,253}\Z)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                        r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?\Z")
_EMAIL_RE = re.compile(rf"^{_LOCAL}@[^@\s]+\Z")


def _is_domain(text: str) -> bool:
    # An all-numeric last label is a mistyped IP address (999.1.1.1), never a domain
    # (RFC 3696 §2: top-level domains are not all-numeric).
    return bool(_DOMAIN_RE.match(text)) and not text.rstrip(".").rsplit(".", 1)[-1].isdigit()


def _utf8_local(local: str) -> str:
    """`local` for the ASCII local-part rules, non-ASCII characters allowed (RFC 6531 §3.3:
    SMTPUTF8 mail may carry them)."""
    return "".join(c if c.isascii() else "x" for c in local)


def _is_mail_domain(text: str) -> bool:
    """A domain as mail may carry it: internationalised (U-labels) too."""
    form = ascii_domain(text)
    return form is not None and _is_domain(form)


def _ascii_form(text: Any) -> str | None:
    """`text` as a domain name in A-label form, or None when it is none. ASCII text is
    checked as written; other text as shared/idn.py reads it (münchen.de, MÜNCHEN.DE and
    例子。广告 are xn--mnchen-3ya.de and xn--fsqu00a.xn--4rr70v)."""
    if not isinstance(text, str):
        return None
    if text.isascii():
        return text if _is_domain(text) else None
    form = ascii_domain(text)
    return form if form is not None and _is_domain(form) else None


@dataclass(frozen=True)
class Domain(Kind):
    """A domain name; an internationalised one is stored in its A-label form, the one DNS
    lookups, SMTP commands and header fields take."""

    def check(self, value):
        form = _ascii_form(value)
        if form is None:
            raise RuleError("must be a domain name such as example.com")
        return form.lower().rstrip(".")

    def describe(self):
        return "domain"

    @property
    def is_text(self):
        return True


def _stripped(value):
    """A list entry without the spaces, tabs or line ends pasted around it (a value is
    stored as it is matched: matching never saw them)."""
    return value.strip() if isinstance(value, str) else value


@dataclass(frozen=True)
class MailDomain(Domain):
    """A domain of mail senders or recipients: internationalised names allowed, kept as
    written; a leading period (the guide's wildcard form) is taken off, since such a domain
    covers its subdomains anyway."""

    def check(self, value):
        value = _stripped(value)
        if isinstance(value, str) and value.startswith("."):
            value = value[1:]
        if not isinstance(value, str) or not _is_mail_domain(value):
            raise RuleError("must be a domain name such as example.com")
        return value.lower().rstrip(".")

    def same_form(self, value):
        return entry_form(value)         # bücher.example is xn--bcher-kva.example


@dataclass(frozen=True)
class Hostname(Domain):
    """A host name (an internationalised one stored in A-label form, as Domain) or an IP."""

    def check(self, value):
        if isinstance(value, str):
            try:
                ipaddress.ip_address(value.strip("[]"))
                return value
            except ValueError:
                pass
        form = _ascii_form(value)
        if form is None:
            raise RuleError("must be a host name or an IP address")
        return form.rstrip(".")

    def describe(self):
        return "host name or IP"


@dataclass(frozen=True)
class ServerName(Domain):
    """The gateway's own DNS name (smtp.hostname): the banner, EHLO, the Received field's
    `by`, bounces' From and Message-IDs. An IP address is refused: EHLO takes a domain or
    an address literal, and an address needs a domain (RFC 5321 §4.1.1.1, §4.1.2), so
    `EHLO ::1` and `MAILER-DAEMON@::1` would be invalid. Null means the machine's name."""

    def check(self, value):
        if isinstance(value, str):
            text = value.strip().strip("[]")
            if text.lower().startswith("ipv6:"):
                text = text[5:]
            try:
                ipaddress.ip_address(text)
            except ValueError:
                pass
            else:
                raise RuleError("must be the gateway's DNS name (mail.example.com), not an IP "
                                "address: EHLO, bounces and Message-IDs need a domain; null "
                                "uses the machine's name")
        form = _ascii_form(value)
        if form is None:
            raise RuleError("must be a host name such as mail.example.com")
        return form.rstrip(".")

    def describe(self):
        return "host name"


# RFC 5321 §4.5.3.1.1 and §4.5.3.1.3: a local part of at most 64 octets, a path of at most
# 256 with its angle brackets
LOCAL_PART_MAX = 64
ADDRESS_MAX = 254


def _address_length(value: str) -> None:
    if len(value.rpartition("@")[0]) > LOCAL_PART_MAX:
        raise RuleError(f"must have at most {LOCAL_PART_MAX} characters before the @")
    if len(value) > ADDRESS_MAX:
        raise RuleError(f"must be at most {ADDRESS_MAX} characters")


_EAI_RULE = ("addresses with non-ASCII before the @ are not supported here (after the @, "
             "an internationalised domain is)")


@dataclass(frozen=True)
class Email(Kind):
    """An address Mailmoat writes into envelopes and header fields (notifications, forwards,
    From of generated mail). An internationalised domain is stored in A-label form, so that
    such mail needs no SMTPUTF8 and its header fields stay ASCII. A non-ASCII local part is
    refused: mail to it needs SMTPUTF8 at every hop, and the notifications would write it
    into their To field as RFC 2047 encoded-words, which RFC 2047 §5 forbids in an address."""

    def check(self, value):
        if isinstance(value, str) and "@" in value:
            local, _, domain = value.rpartition("@")
            form = _ascii_form(domain)
            if form is not None and not domain.isascii():
                value = f"{local}@{form}"
            if not local.isascii():
                self.check(f"{_utf8_local(local)}@{domain}")   # any other rule first
                raise RuleError(_EAI_RULE)
        if not isinstance(value, str) or not _EMAIL_RE.match(value) \
                or not _is_domain(value.rsplit("@", 1)[1]):
            raise RuleError("must be a full email address such as admin@example.com")
        _address_length(value)
        return value

    def describe(self):
        return "email address"

    @property
    def is_text(self):
        return True


_SENDER_RULE = ("must be a name (Security Office), an email address (alerts@example.com) "
                "or both (Security Office <alerts@example.com>)")
SENDER_NAME_MAX = 64            # characters of the name; From folds it (RFC 5322 §2.2.3)
_NAME_SPECIALS = '"\\<>@'


def _sender_name(text: str) -> str:
    """The name part of smtp.notify_from, one line; quotes around it are taken off. Any
    letters and spaces: the From field writes a name that is not ASCII as RFC 2047 encoded
    words (core/notify.py, core/delivery/bounce.py)."""
    name = text.strip(" ")
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    if not name.isprintable() or any(c in _NAME_SPECIALS for c in name):
        # isprintable: no control, line break or bidi control, which would let the name
        # start a forged header line or read backwards in a mail reader
        raise RuleError(f"{_SENDER_RULE}; a name cannot hold control characters, "
                        f"quotes inside it, \\, <, > or @")
    name = " ".join(name.split())
    if len(name) > SENDER_NAME_MAX:
        raise RuleError(f"{_SENDER_RULE}; the name may have at most {SENDER_NAME_MAX} "
                        f"characters")
    return name


@dataclass(frozen=True)
class Sender(Kind):
    """smtp.notify_from (SPEC §3 "a user name or a full address"): a name, an address, or
    both as `Name <address>`; stored as `Name <address>` with the quotes around a name
    taken off. A name alone is completed with smtp.hostname (core/notify.py from_address).
    The address is an `Email`: generated mail goes with the null sender, and an address
    with UTF-8 in From would need SMTPUTF8 at every hop, which the envelope does not ask
    for."""

    def check(self, value):
        if not isinstance(value, str) or not value.strip():
            raise RuleError(_SENDER_RULE)
        value = value.strip(" ")        # a line break stays, and is refused
        if "<" in value or ">" in value:
            match = re.fullmatch(r"([^<>]*)<([^<>]*)>", value)
            if match is None:
                raise RuleError(_SENDER_RULE)
            name, address = _sender_name(match[1]), Email().check(match[2].strip(" "))
            return f"{name} <{address}>" if name else address
        if "@" in value:
            return Email().check(value)
        name = _sender_name(value)
        if not name:
            raise RuleError(_SENDER_RULE)
        return name

    @staticmethod
    def parts(value: str) -> tuple[str, str | None]:
        """(name, address or None) of a value `check` returned: the one reading of it."""
        if "<" in value:
            name, _, address = value.rpartition("<")
            return name.strip(), address.rstrip(">").strip()
        if "@" in value:
            return "", value
        return value, None

    def describe(self):
        return "name, email address, or Name <address>"

    @property
    def is_text(self):
        return True


def _unmapped(address: ipaddress.IPv4Address | ipaddress.IPv6Address):
    """An IPv4-mapped IPv6 address (::ffff:10.0.0.1) as the IPv4 address it stands for:
    clients arrive unmapped (the listener sets IPV6_V6ONLY, core/smtp/server.py), so the
    mapped form would match nothing and could not be listened on."""
    return getattr(address, "ipv4_mapped", None) or address


@dataclass(frozen=True)
class IpAddress(Kind):
    """An address, stored in its short form; an IPv4-mapped one as IPv4 (`_unmapped`). A
    zone index (fe80::1%eth0) is refused: a link-local address is no listening or
    list-answer address here."""

    def check(self, value):
        if not isinstance(value, str):  # ip_address() also takes integers: 5 -> 0.0.0.5
            raise RuleError("must be an IPv4 or IPv6 address")
        try:
            address = ipaddress.ip_address(value)
        except (ValueError, TypeError):
            raise RuleError("must be an IPv4 or IPv6 address") from None
        if getattr(address, "scope_id", None):
            raise RuleError("must be an address without a zone index (%...): give an "
                            "address of one of the host's interfaces, or :: for all of them")
        return str(_unmapped(address))

    def describe(self):
        return "IP address"

    @property
    def is_text(self):
        return True


@dataclass(frozen=True)
class Resolver(Kind):
    """`IP`, `IP:port`, `[IPv6]:port` — a DNS server."""

    def check(self, value):
        if not isinstance(value, str):
            raise RuleError("must be IP or IP:port")
        host, port = value, None
        if value.startswith("["):
            host, bracket, rest = value[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise RuleError("must be IP or IP:port (IPv6 as [addr]:port)")
            port = rest[1:] if rest else None
        elif value.count(":") == 1:
            host, port = value.split(":")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise RuleError("must be IP or IP:port (IPv6 as [addr]:port)") from None
        if port is not None and (not re.fullmatch(r"[0-9]{1,5}", port)
                                 or not 1 <= int(port) <= 65535):
            raise RuleError("port must be between 1 and 65535")
        return value

    def describe(self):
        return "IP[:port]"


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


@dataclass(frozen=True)
class Timezone(Kind):
    def check(self, value):
        if not isinstance(value, str):
            raise RuleError("must be an IANA time zone name such as Europe/Berlin")
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise RuleError("must be an IANA time zone name such as Europe/Berlin") from None
        return value

    def describe(self):
        return "IANA time zone"

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


def _fields(checks: list[tuple[str, Kind, Any]]) -> dict:
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


def _object(value, required: set[str], optional: set[str]) -> dict:
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
class HostPort(Kind):
    default_port: int = 25

    def check(self, value):
        value = _object(value, {"host"}, {"port"})
        value["host"] = Hostname().check(value["host"])
        try:
            value["port"] = Int(1, 65535).check(value.get("port", self.default_port))
        except RuleError as exc:
            raise RuleError(f"port {exc.rule}") from None
        return value

    def describe(self):
        return '{"host", "port"}'


@dataclass(frozen=True)
class Characters(Str):
    """A set of characters written one after the other (guide §6: "Do not insert spaces or
    commas"): a space or a comma in it would be refused as a character too."""

    def check(self, value):
        value = super().check(value)
        if any(c.isspace() or c == "," for c in value):
            raise RuleError("must list the characters one after the other, without spaces "
                            "or commas")
        return value


@dataclass(frozen=True)
class ClamdAddress(Str):
    """Where clamd listens: `host:port`, `[v6]:port`, or a unix socket's absolute path
    (optionally `unix:/path`), as core/scan/clamd.py reads it. A typo found at save time
    instead of holding all mail as unscannable (av finding 7)."""

    def check(self, value):
        value = super().check(value).strip()
        if value.startswith(("/", "unix:/")):
            return value
        host, colon, port = value.rpartition(":")
        if not colon or not host or (":" in host and not host.startswith("[")):
            raise RuleError("must be host:port, [IPv6 address]:port or the absolute path of "
                            "a unix socket")
        if host.startswith("["):
            try:
                ipaddress.IPv6Address(host.removeprefix("[").removesuffix("]"))
            except ValueError:
                raise RuleError("must have an IPv6 address inside the [ ]") from None
        else:
            Hostname().check(host)
        number = integer_from_text(port)
        try:
            Int(1, 65535).check(port if number is None else number)
        except RuleError as exc:
            raise RuleError(f"port {exc.rule}") from None
        return value

    def describe(self):
        return "host:port or unix socket path"


@dataclass(frozen=True)
class RoutingEntry(Kind):
    """A local route. An internationalised `match` is stored in A-label form (shared/idn.py
    `ascii_pattern`), which the core compares and whose MX it looks up; a `*` or `?` stands
    for characters of that form, so it may share a label only with ASCII characters."""

    def check(self, value):
        value = _object(value, {"match"}, {"relay", "port"})
        match = Str(max_len=253, min_len=1).check(value["match"])
        if not match.isascii():
            form = ascii_pattern(match)
            if form is None and any(("*" in label or "?" in label) and not label.isascii()
                                    for label in re.split(r"[.。．｡]", match)):
                raise RuleError("match may have * and ? only in labels written in ASCII "
                                "(*.münchen.de, not münch*.de)")
            match = Str(max_len=253, min_len=1).check(form or match)
        if not re.match(r"^[A-Za-z0-9*?.-]+\Z", match):
            raise RuleError("match must be a domain, with * and ? wildcards allowed")
        out = {"match": match.lower()}
        if value.get("relay") not in (None, ""):
            out["relay"] = Hostname().check(value["relay"])
        try:
            out["port"] = Int(1, 65535).check(value.get("port", 25))
        except RuleError as exc:
            raise RuleError(f"port {exc.rule}") from None
        return out

    def describe(self):
        return '{"match", "relay"?, "port"?}'


RULE_MAX_TERMS = 50  # SPEC §3 rules.spam: ≤50 terms per rule


@dataclass(frozen=True)
class RuleTerm(Kind):
    """A content or spam rule term: text with `*`/`?` wildcards that names something. Spaces
    around it are not part of it (the rule engine never matched them), so it is stored
    without them and reads back in the console as it was saved."""

    def check(self, value):
        value = Str(max_len=200, min_len=1).check(value)
        if not value.strip(" \t*?"):
            raise RuleError("must contain something other than spaces and wildcards "
                            "(it would match every message)")
        return value.strip()

    def same_form(self, value):
        # Terms match regardless of letter case (shared/wildcard.py: re.IGNORECASE), so "A"
        # repeats "a". Lower case, not casefold(): re.IGNORECASE compares letters one by
        # one by their lower case, so "Maß" and "MASS" match different text and are two
        # terms, though casefold() makes both "mass".
        return value.lower()

    def describe(self):
        return "term (* and ? wildcards)"


@dataclass(frozen=True)
class RuleTerms(Kind):
    """A rule's terms (`terms`, which needs one at least) or its `none_of` terms."""

    required: bool = False

    def check(self, value):
        terms = ListOf(RuleTerm(), max_items=RULE_MAX_TERMS).check(value)
        if self.required and not terms:
            raise RuleError("must have at least one term")
        return terms

    def describe(self):
        return "list of terms"


@dataclass(frozen=True)
class Rule(Kind):
    """A content or spam rule (SPEC §3 rules.spam). Every bad field is named at once."""

    def check(self, value):
        value = _object(value, {"terms"}, {"enabled", "match", "none_of", "name"})
        name = [("name", Str(max_len=100), value["name"])] \
            if value.get("name") is not None else []
        return _fields([("enabled", Bool(), value.get("enabled", True)),
                        ("match", Choice(("all", "any")), value.get("match", "any")),
                        *name,
                        ("terms", RuleTerms(required=True), value.get("terms", [])),
                        ("none_of", RuleTerms(), value.get("none_of", []))])

    def describe(self):
        return '{"enabled", "match": all|any, "terms": [...], "none_of": [...]}'


@dataclass(frozen=True)
class ListingAnswer(IpAddress):
    """An RBL return code: the core takes only A records in 127.0.0.0/8 outside the error
    range as listings (shared/dnsxl.py), so any other address could never match."""

    def check(self, value):
        value = super().check(value)
        if ipaddress.ip_address(value) in ERROR_CODE_NET:
            raise RuleError("127.255.255.0/24 is a list's error code (its queries are "
                            "refused), never a listing")
        if ipaddress.ip_address(value) not in LISTING_NET:
            raise RuleError("must be an address in 127.0.0.0/8, as lists answer "
                            "(for example 127.0.0.2)")
        return value


@dataclass(frozen=True)
class RblZone(Kind):
    """A real-time blacklist zone (SPEC §3 rbl.zones). Every bad field is named at once."""

    def check(self, value):
        value = _object(value, {"zone"}, {"enabled", "return_codes"})
        return _fields([("enabled", Bool(), value.get("enabled", True)),
                        ("zone", Domain(), value["zone"]),
                        ("return_codes", ListOf(ListingAnswer()),
                         value.get("return_codes", []))])

    def describe(self):
        return '{"enabled", "zone", "return_codes": [IP...]}'


@dataclass(frozen=True)
class WhitelistEntry(Kind):
    """`@domain`, `.domain` (the domain and its subdomains) or a full address."""

    def check(self, value):
        value = _stripped(value)
        if isinstance(value, str):
            if value.startswith(("@", ".")) and _is_mail_domain(value[1:]):
                return value.lower().rstrip(".")
            if "*" in value or "?" in value:
                raise RuleError("takes no * or ? wildcards: use @domain for a domain, "
                                ".domain for it and its subdomains")
            if "@" in value and not value.startswith(("@", ".")):
                local, _, domain = value.rpartition("@")
                if _is_mail_domain(domain):          # Email's rules, IDN domains allowed
                    Email().check(f"{_utf8_local(local)}@{ascii_domain(domain)}")
                    return value.lower().rstrip(".")
                return Email().check(value)           # raises with Email's rule
        raise RuleError("must be @domain, .domain or a full email address")

    def same_form(self, value):
        return entry_form(value)         # @bücher.example is @xn--bcher-kva.example

    def describe(self):
        return "@domain | .domain | address"


@dataclass(frozen=True)
class BlacklistEntry(Kind):
    """`@domain`, `.domain` (the guide: domains begin with @ or a period; both block the
    domain and its subdomains) or `local@domain` with `*`/`?` in the local part."""

    def check(self, value):
        value = _stripped(value)
        if isinstance(value, str) and value.startswith(".") and _is_mail_domain(value[1:]):
            return value.lower().rstrip(".")
        if isinstance(value, str) and "@" in value:
            local, _, domain = value.rpartition("@")
            if _is_mail_domain(domain) and (local == "" or re.match(
                    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+\Z", _utf8_local(local))):
                _address_length(value)
                return value.lower().rstrip(".")
        raise RuleError("must be @domain, .domain or an address (* and ? allowed before the @)")

    def same_form(self, value):
        return entry_form(value)         # @bücher.example is @xn--bcher-kva.example

    def describe(self):
        return "@domain | .domain | address with wildcards"


_RELAY_RULE = "must be a host name, IP, CIDR, *.domain or 1.2.3.*"
_RELAY_WILDCARD_RULE = ("* may stand only for the last parts of an IP address: "
                        "1.2.3.*, 1.2.* or 1.*")
_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"


_MAPPED_NET = ipaddress.IPv6Network("::ffff:0:0/96")     # RFC 4291 §2.5.5.2


def _relay_network(value: str) -> str:
    """A CIDR entry in its short form; one inside ::ffff:0:0/96 as the IPv4 network it
    stands for (::ffff:127.0.0.0/104 -> 127.0.0.0/8), as clients arrive (`_unmapped`)."""
    network = ipaddress.ip_network(value, strict=False)
    if network.version == 6 and network.subnet_of(_MAPPED_NET):
        return str(ipaddress.IPv4Network((network.network_address.ipv4_mapped,
                                          network.prefixlen - 96)))
    return str(network)


@dataclass(frozen=True)
class RelayEntry(Kind):
    """Host name, IP, CIDR, `*.domain` or an IPv4 wildcard (SPEC §3 relay.allowed).

    Guide §6 "Preventing relaying": `*` is "the first element of a domain name or the last
    element of an IP address": `1.2.3.*`, `1.2.*`, `1.*` (and `1.2.*.*`, the same range as
    `1.2.*`); kept as written. An IPv4-mapped address or network is stored in its IPv4 form
    (`_unmapped`, `_relay_network`): the mapped form never matched a client. A `*` before a number (`127.*.0.2`), which an earlier release
    took, is refused with the rule that says where it goes.
    """

    def check(self, value):
        if not isinstance(value, str) or not value:
            raise RuleError(_RELAY_RULE)
        try:
            return _relay_network(value) if "/" in value \
                else str(_unmapped(ipaddress.ip_address(value)))
        except ValueError:
            pass
        if re.match(rf"^{_OCTET}(\.{_OCTET}){{0,2}}(\.\*)+\Z", value) and value.count(".") <= 3:
            return value
        if re.match(rf"^({_OCTET}|\*)(\.({_OCTET}|\*)){{1,3}}\Z", value) and "*" in value:
            raise RuleError(_RELAY_WILDCARD_RULE)
        # a host name or *.domain is compared with the client's PTR name, which DNS gives in
        # A-label form: an internationalised one is stored in that form (shared/idn.py)
        if value.startswith("*.") and (form := _ascii_form(value[2:])) is not None:
            return "*." + form.lower()
        if (form := _ascii_form(value)) is not None:
            return form.lower()
        raise RuleError(_RELAY_RULE)

    def describe(self):
        return "host | IP | CIDR | *.domain | 1.2.3.*"

