"""Settings value kinds for names on the network: domains, host names, email addresses,
the From of generated mail, IP addresses, DNS servers, host:port pairs, clamd's address,
whitelist and blacklist entries and relay entries (SPEC §3). The kinds' contract is in
`shared.settings_types`.

Internationalised names are accepted in U-labels and stored in A-label form, the form DNS
and SMTP give and the core compares with (shared/idn.py), so `config get`, an export and the
console show one form: sender-list entries too (`@bücher.example` is stored
`@xn--bcher-kva.example`), whose local parts keep what they are written in.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, ClassVar

import idna

from shared.idn import FULL_STOPS, ascii_domain, entry_form
from shared.mailbox import is_list_local_part
from shared.settings_types import (
    Characters, Int, Kind, RuleError, Str, integer_from_text, plain_object,
)

__all__ = [
    "Domain", "MailDomain", "Hostname", "ServerName", "Email", "Sender", "IpAddress",
    "Resolver", "HostPort", "ClamdAddress", "WhitelistEntry", "BlacklistEntry", "RelayEntry",
    "AddressCharacters",
]


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


LABEL_MAX, DOMAIN_MAX = 63, 253        # RFC 1035 §2.3.4, in A-label form
_DOMAIN_LENGTH_RULE = (f"a domain may have at most {LABEL_MAX} characters between dots and "
                       f"{DOMAIN_MAX} in all (an internationalised one in its xn-- form)")
_LABEL_SHAPE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z")


def _domain_length(text: Any) -> None:
    """RuleError naming the length rule when `text` would be a domain but for its length (a
    label over 63 characters or the whole over 253, counted in A-label form), so a pasted
    name that looks right is not met with the general "must be …" alone (tester27b C5).
    Each label read as shared/idn.py reads it (full stops, UTS #46); one that is no label
    whatever its length leaves the general rule to say so."""
    if not isinstance(text, str):
        return
    forms = []
    for label in text.strip().translate(FULL_STOPS).rstrip(".").split("."):
        if label.isascii():
            if not _LABEL_SHAPE.match(label):
                return
            forms.append(label)
            continue
        try:
            mapped = idna.uts46_remap(label, std3_rules=True, transitional=False)
            idna.check_label(mapped)
        except (idna.IDNAError, UnicodeError) as exc:
            if getattr(exc, "code", None) == "input_too_long":   # idna's own bound
                raise RuleError(_DOMAIN_LENGTH_RULE) from None
            return
        # punycode writes at least a character for each: a long label is too long as it is,
        # and is not encoded (encoding is quadratic in its length: review27c R1)
        forms.append("x" * len(mapped) if len(mapped) > LABEL_MAX
                     else "xn--" + mapped.encode("punycode").decode("ascii"))
    if max(map(len, forms)) > LABEL_MAX or len(".".join(forms)) > DOMAIN_MAX:
        raise RuleError(_DOMAIN_LENGTH_RULE)


# What no reader sees in an address (tester27b B1): controls, format characters (zero width
# space, soft hyphen, text-direction marks and overrides) but the joiners Persian and Indic
# words are written with, and spaces other than the ASCII one a quoted local part may hold.
_UNSEEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})
_JOINERS = frozenset("\u200c\u200d")


def _visible_local(local: str) -> None:
    """A list entry's local part holds only characters a reader sees (tester27b B1): a zero
    width space, a soft hyphen or a text-direction override pasted with an address made an
    entry that matched no sender, shown in the console as if it were right, or reversed."""
    for i, char in enumerate(local):
        if (char != " " and char not in _JOINERS
                and unicodedata.category(char) in _UNSEEN_CATEGORIES):
            raise RuleError(f"must not contain invisible or text-direction characters before "
                            f"the @ (U+{ord(char):04X}, character {i + 1})")


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
            _domain_length(value)
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
    """A domain of mail senders or recipients: internationalised names allowed, stored in
    A-label form (module docstring); a leading period (the guide's wildcard form) is taken
    off, since such a domain covers its subdomains anyway."""

    def check(self, value):
        value = _stripped(value)
        if isinstance(value, str) and value.startswith("."):
            value = value[1:]
        if not isinstance(value, str) or not _is_mail_domain(value):
            raise RuleError("must be a domain name such as example.com")
        return entry_form(value)

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


# Top labels no public name has, which name this machine to itself wherever they are used.
_LOOPBACK_TOP_LABELS = ("localhost", "localdomain")


@dataclass(frozen=True)
class ServerName(Domain):
    """The gateway's own DNS name (smtp.hostname): the banner, EHLO, the Received field's
    `by`, bounces' From and Message-IDs. An IP address is refused: EHLO takes a domain or
    an address literal, and an address needs a domain (RFC 5321 §4.1.1.1, §4.1.2), so
    `EHLO ::1` and `MAILER-DAEMON@::1` would be invalid. A name must be the gateway's
    fully qualified one (RFC 5321 §4.1.1.1, §2.3.5): a single label (`mail`) or a loopback
    name (`localhost`, `mx.localhost`: RFC 6761 §6.3; `localhost.localdomain`, the loopback
    name many systems give) names no host to the receiver, and many refuse such an EHLO;
    `localhost.corp.example` is a name like any other. Null means the machine's name, which is not
    checked: it may be a single label on some hosts, and start-up must not depend on it."""

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
        form = form.rstrip(".")
        labels = form.lower().split(".")
        if labels[-1] in _LOOPBACK_TOP_LABELS:
            raise RuleError(f"must be the gateway's fully qualified domain name "
                            f"(mail.example.com), not {form}: localhost names every machine "
                            f"to itself, and many receivers refuse it in EHLO (RFC 5321 "
                            f"§4.1.1.1, §2.3.5); null uses the machine's name")
        if len(labels) == 1:
            raise RuleError(f"must be the gateway's fully qualified domain name "
                            f"(mail.example.com), not the single label {form}: EHLO takes "
                            f"the fully qualified name (RFC 5321 §4.1.1.1, §2.3.5); null uses "
                            f"the machine's name")
        return form

    def describe(self):
        return "fully qualified host name"


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

    def same_form(self, value):
        # One mailbox (clispec19 C6: ["A@B.TEST", "a@b.test"] mailed every alert twice): a
        # domain's letter case means nothing (RFC 5321 §2.4), and a local part's nothing at
        # almost every host. Refused in a list, not folded: the address stays as typed.
        return value.lower()

    def repeat_note(self, value, first):
        return "letter case is ignored" if value != self.check(first) else None

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
    bad = next((i for i, c in enumerate(name) if not c.isprintable() or c in _NAME_SPECIALS),
               None)
    if bad is not None:
        # isprintable: no control, line break or bidi control, which would let the name
        # start a forged header line or read backwards in a mail reader; named as the
        # header-text rule names one (settings_types.Str), since neither shows on the page
        raise RuleError(f"{_SENDER_RULE}; a name cannot hold control characters, "
                        f"quotes inside it, \\, <, > or @ (U+{ord(name[bad]):04X}, "
                        f"character {bad + 1} of the name)")
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
    clients arrive unmapped (the listener sets IPV6_V6ONLY, core/smtp/listen_sockets.py), so the
    mapped form would match nothing and could not be listened on."""
    return getattr(address, "ipv4_mapped", None) or address


_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


@dataclass(frozen=True)
class IpAddress(Kind):
    """An address, stored in its short form; an IPv4-mapped one as IPv4 (`_unmapped`). A
    zone index (fe80::1%eth0) is refused: a link-local address is no listening or
    list-answer address here. With `listening`, an address a listener binds (smtp.listen):
    a multicast or broadcast one is refused, since Linux lets a TCP socket bind it and
    listen there, and no connection ever arrives (whether the host has the address is
    asked at save time: shared/ports.py)."""

    listening: bool = False

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
        address = _unmapped(address)
        if self.listening and (address.is_multicast or address == _LIMITED_BROADCAST):
            kind = "a multicast" if address.is_multicast else "the broadcast"
            raise RuleError(f"{address} is {kind} address, which takes no connections: give "
                            f"an address of one of the host's interfaces, or 0.0.0.0 or :: "
                            f"for all of them")
        return str(address)

    def describe(self):
        return "IP address"

    @property
    def is_text(self):
        return True


@dataclass(frozen=True)
class Resolver(Kind):
    """`IP`, `IP:port`, `[IPv6]:port` — a DNS server, kept as written. Two spellings of one
    server are one entry (`same_form`: 127.0.0.1 and 127.0.0.1:0053, ::1 and [::1]:53), so
    a list refuses the second as it refuses any repeat. An address that is no one server is
    refused: the unspecified address (0.0.0.0, ::), which RFC 1122 §3.2.1.3 forbids as a
    destination, and multicast and broadcast addresses, which no server answers from."""

    def check(self, value):
        self._server(value)
        return value

    def same_form(self, value):
        return self._server(value)

    @staticmethod
    def _server(value) -> tuple[str, int]:
        """(the address in its short form, IPv4-mapped as IPv4, and the port) of an entry,
        or RuleError."""
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
            address = _unmapped(ipaddress.ip_address(host))
        except ValueError:
            raise RuleError("must be IP or IP:port (IPv6 as [addr]:port)") from None
        if port is not None and (not re.fullmatch(r"[0-9]{1,5}", port)
                                 or not 1 <= int(port) <= 65535):
            raise RuleError("port must be between 1 and 65535")
        if address.is_unspecified or address.is_multicast or address == _LIMITED_BROADCAST:
            kind = ("the unspecified" if address.is_unspecified
                    else "a multicast" if address.is_multicast else "the broadcast")
            raise RuleError(f"{address} is {kind} address, not a DNS server's: give the "
                            "address of one (127.0.0.1 for a server on this host)")
        return str(address), 53 if port is None else int(port)

    def describe(self):
        return "IP[:port]"


@dataclass(frozen=True)
class HostPort(Kind):
    default_port: int = 25
    # optional text fields beside host and port, (name, console label): the console's
    # generic forms give each a box of its own (console/schema_forms.py)
    extra_fields: ClassVar[tuple[tuple[str, str], ...]] = ()

    def check(self, value):
        value = plain_object(value, {"host"}, {"port"})
        value["host"] = Hostname().check(value["host"])
        try:
            value["port"] = Int(1, 65535).check(value.get("port", self.default_port))
        except RuleError as exc:
            # the field named, so the console marks the Port box (console/schema_forms.py)
            raise RuleError(f"port {exc.rule}", field="port", inner=exc) from None
        return value

    def describe(self):
        return '{"host", "port"}'


@dataclass(frozen=True)
class ClamdAddress(Str):
    """Where clamd listens: `host:port`, `[v6]:port`, or a unix socket's absolute path
    (optionally `unix:/path`), as shared/clamd_wire.py reads it. A typo found at save time
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


def _entry_domain_length(value: Any) -> None:
    """`_domain_length` of a list entry's domain, when its form is otherwise right: `@domain`,
    `.domain`, or a local part the lists take before its @ (review27c R6: an entry without
    its @ was told only the length)."""
    if not isinstance(value, str):
        return
    if value.startswith("."):
        _domain_length(value[1:])
    elif "@" in value:
        local, _, domain = value.rpartition("@")
        if local == "" or is_list_local_part(local):
            _domain_length(domain)


@dataclass(frozen=True)
class WhitelistEntry(Kind):
    """`@domain`, `.domain` (the domain and its subdomains) or a full address, stored in
    the lists' one form (shared/idn.py `entry_form`)."""

    def check(self, value):
        value = _stripped(value)
        if isinstance(value, str):
            if value.startswith(("@", ".")) and _is_mail_domain(value[1:]):
                return entry_form(value)
            if "*" in value or "?" in value:
                raise RuleError("takes no * or ? wildcards: use @domain for a domain, "
                                ".domain for it and its subdomains")
            if "@" in value and not value.startswith(("@", ".")):
                local, _, domain = value.rpartition("@")
                _visible_local(local)
                # shared/mailbox.py rule 3, IDN domains allowed
                if is_list_local_part(local) and _is_mail_domain(domain):
                    _address_length(f"{local}@{ascii_domain(domain)}")   # the domain in A-labels
                    return entry_form(value)
            _entry_domain_length(value)
        raise RuleError("must be @domain, .domain or a full email address")

    def same_form(self, value):
        return entry_form(value)         # @bücher.example is @xn--bcher-kva.example

    def describe(self):
        return "@domain | .domain | address"


@dataclass(frozen=True)
class BlacklistEntry(Kind):
    """`@domain`, `.domain` (the guide: domains begin with @ or a period; both block the
    domain and its subdomains) or `local@domain` with `*`/`?` in the local part, stored in
    the lists' one form (shared/idn.py `entry_form`)."""

    def check(self, value):
        value = _stripped(value)
        if isinstance(value, str) and value.startswith(".") and _is_mail_domain(value[1:]):
            return entry_form(value)
        if isinstance(value, str) and "@" in value:
            local, _, domain = value.rpartition("@")
            _visible_local(local)
            # shared/mailbox.py rule 3 (* and ? are atext there)
            if _is_mail_domain(domain) and (local == "" or is_list_local_part(local)):
                if local.startswith('"') and ("*" in local or "?" in local):
                    # a quoted entry names one mailbox exactly (lists.py compares it in
                    # its canonical form): a * inside it would be read as a wildcard
                    raise RuleError("a quoted local part takes no * or ? wildcards")
                _address_length(f"{local}@{ascii_domain(domain)}")   # the domain in A-labels
                return entry_form(value)
        _entry_domain_length(value)
        raise RuleError("must be @domain, .domain or an address (* and ? allowed before the @)")

    def same_form(self, value):
        # @bücher.example is @xn--bcher-kva.example; `.domain` blocks what `@domain` blocks
        # (core/scan/antispam/lists.py rule 3), so the two are one entry, as a leading
        # period is in the exclusion list (guide19 C4: @spam.test and .Spam.test were kept)
        form = entry_form(value)
        return "@" + form[1:] if form.startswith(".") else form

    def repeat_note(self, value, first):
        if value.startswith(".") != first.strip().startswith("."):
            return ".domain blocks what @domain blocks"
        return None

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


# What every recipient has: the @ before its domain, and a . in that domain (example.com;
# RCPT TO:<postmaster> aside, which the session answers before this check).
_IN_EVERY_ADDRESS = {"@": "an @", ".": "a . in its domain (example.com)"}


@dataclass(frozen=True)
class AddressCharacters(Characters):
    """address_chars.chars (SPEC §3, guide §6 "Preventing relaying"): characters that make
    the session refuse a recipient (553 5.1.3). `@` and `.` are refused: every address has
    them, so every recipient would be refused and the gateway would take no mail at all
    (tester guide36, finding 4)."""

    def check(self, value):
        value = super().check(value)
        listed = [char for char in _IN_EVERY_ADDRESS if char in value]
        if listed:
            has = " and ".join(_IN_EVERY_ADDRESS[char] for char in listed)
            raise RuleError(f"must not list {' or '.join(listed)}: every address has {has}, "
                            f"so every recipient would be refused")
        return value
