"""The settings schema: every key Mailmoat knows, declared once (SPEC §3, ARCHITECTURE invariant 5).

Each `Setting` has its kind (type and range), default, help text, the console page that owns
it, whether it needs a restart and whether it is a secret. Console forms, the CLI and the core
read defaults and validate through this module only; no other module may hold a default.

Rules:
- Every message names the key and the rule: `smtp.port: must be between 1 and 65535`.
- `validate_changes` checks a set of changes against the current values, all keys at once,
  including the rules that span keys (shared/settings_cross_rules.py), and returns every
  error; nothing is half-applied by its callers. A cross rule declares the keys it reads and
  is checked when a change touches one of them, so a value an older release stored that a
  rule now refuses blocks no edit of another key; `refused_values` lists such values (the
  Status page shows them). Both leave out a cross rule that reads a value breaking its own
  kind, given or stored: the rules expect valid values.
- Hashed secrets (`admin.password`, `admin.report_only.password`) are given in plain text
  (≤32 characters, case-sensitive) and stored as werkzeug hashes; a stored hash given back
  (from `config export`) is kept as it is, but only when it is one `check_password` can check:
  a damaged one is refused (it would lock the account out). Other secrets are stored as given
  and never printed. `"***"`, how `config get` prints a secret that is set, is refused as
  the value of every secret.
- No text in a value, however deep in its lists and objects, may hold a lone UTF-16
  surrogate (settings_types `check_encodable`): it is refused before the key's kind sees it.
"""

from __future__ import annotations

import re
import secrets as _secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from werkzeug.security import check_password_hash, generate_password_hash

from shared.guide_texts import (
    ALERT_EVENT_NAMES, ALERT_TEXTS, DEFAULT_AV_DELETED_TEXT, DEFAULT_BLOCKED_EXTENSIONS,
    DEFAULT_FILENAME_DELETED_TEXT, DEFAULT_NOTIFY_ADMIN_BODY, DEFAULT_NOTIFY_SENDER_BODY,
    DEFAULT_NOTIFY_SUBJECT, DEFAULT_OUTBREAK_BODY, DEFAULT_OUTBREAK_SUBJECT,
    DEFAULT_QUARANTINE_TEMPLATE_LIST, DEFAULT_QUARANTINE_TEMPLATE_USER, LDAP_AUTOFILL,
)
from shared.settings_addresses import (
    AddressCharacters, BlacklistEntry, ClamdAddress, Domain, Email, HostPort, Hostname,
    IpAddress, MailDomain, RelayEntry, Resolver, Sender, ServerName, WhitelistEntry,
)
from shared.settings_entries import CentralQuarantine, RblZone, RoutingEntry, Rule
from shared.settings_types import (
    AbsolutePath, Base64Key, Bool, Choice, Extension, Int, Kind, ListOf, Nullable,
    Pattern, RuleError, Str, Template, TimeOfDay, Timezone, UpdateSource, Weekday,
    check_encodable, integer_from_text,
)

__all__ = [
    "Setting", "SCHEMA", "SettingError", "validate_changes", "defaults", "is_secret",
    "display_value", "parse_cli_value", "hash_password", "check_password", "PAGES",
    "generated_values", "ALERT_EVENTS", "RULES_MAX_TOTAL", "STORED_HASH_RULE",
    "refused_values", "SPAM_QUARANTINE_NOT_BUILT", "NOT_BUILT_FEATURES",
    "NOTIFY_SENDER_METATAGS", "NOTIFY_ADMIN_METATAGS", "OUTBREAK_METATAGS", "PORT_KEYS",
    "SECRET_MASK", "URL_MASK_RULE", "read_json", "OPEN_RELAY_WARNING", "RELAY_MODE_LABELS",
    "SENSITIVITY_THRESHOLDS",
]

PASSWORD_MAX_CHARS = 32  # SPEC §3 admin.password: ≤32 chars, case-sensitive
RULES_MAX_TOTAL = 100  # SPEC §3: ≤100 spam + content rules together
RBL_MAX_ZONES = 3  # SPEC §3 rbl.zones: up to 3
_HASH_PREFIXES = ("scrypt:", "pbkdf2:")
# A stored hash as werkzeug's generate_password_hash writes it: method:args$salt$hex digest.
_STORED_HASH = re.compile(r"(?:scrypt:(?P<n>[1-9][0-9]{0,9}):(?P<r>[1-9][0-9]{0,3}):"
                          r"(?P<p>[1-9][0-9]{0,3})"
                          r"|pbkdf2:(?P<hash>sha1|sha224|sha256|sha384|sha512):"
                          r"(?P<iterations>[1-9][0-9]{0,9}))"
                          r"\$[A-Za-z0-9]{1,64}\$(?P<digest>[0-9a-f]+)\Z")
_DIGEST_HEX_CHARS = {"scrypt": 128, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96,
                     "sha512": 128}
# Work limits for a stored hash given back, so checking one cannot hang a logon: 8 times
# werkzeug 3.1's defaults (scrypt n·r·p = 2**15·8·1, pbkdf2 1,000,000 iterations).
SCRYPT_MAX_COST = 8 * 2**15 * 8
PBKDF2_MAX_ITERATIONS = 8 * 1_000_000
# How `config get` shows a secret that is set (display_value). Given back as a value (a file
# made from `config get` output, imported), it is the mask, not a secret: it would make the
# administrator password "***" (settings finding 3).
SECRET_MASK = "***"
# A file holding the mask is `config get` output, or (upgrade16 finding 5) a `config export`
# of a home where an older release stored the mask itself: the rule says what to do in both.
SECRET_MASK_RULE = (f'"{SECRET_MASK}" is how `config get` hides a secret, not its value: '
                    "give the real one (`config export` keeps secrets; an export holds "
                    f'"{SECRET_MASK}" only where an older release stored it as the value)')
# The same value stored by an older release, as the Status page lists it (refused_values).
SECRET_MASK_STORED_RULE = (f'"{SECRET_MASK}" is stored as the value (an older release let in '
                           "how `config get` hides a secret): set the real one")
# The same for a URL's credentials (_masked_url): imported, they would be the password "***".
URL_MASK_RULE = (f'"{SECRET_MASK}" in a URL is how `config get` hides its credentials, not '
                 "their value: give the real ones (`config export` keeps them)")
STORED_HASH_RULE = (f"must be a password of at most {PASSWORD_MAX_CHARS} characters, or a "
                    "password hash exactly as `config export` wrote it")
# Until the spam quarantine issue builds its pages, mail sent there could be neither seen nor
# released (dayone finding 6): no change may ask for it, and a content rule whose stored
# action is quarantine holds the mail instead (core/pipeline/checks/content_rules.py).
SPAM_QUARANTINE_NOT_BUILT = ("the spam quarantine cannot show or release mail until its pages "
                             "are built")
# Features SPEC §3 declares settings for that later issues build (docs findings B1, C4): their
# settings are stored and validated, and nothing acts on them beyond what a key's own help
# says. `_not_built` ends the help of each such key with its feature's sentence, so
# docs/settings.md, the console's settings listings and the Configuration › Logging notice
# (the "siem" one) say it in one wording.
NOT_BUILT_FEATURES = {
    "siem": "SIEM forwarding is not built yet: its settings are stored, but no event is sent "
            "to a SIEM",
    "liveupdate": "LiveUpdate is not built yet: its settings are stored, but nothing downloads "
                  "packages or watches a drop directory (install them with `mailmoat "
                  "definitions install`)",
    "spam_quarantine": "The spam quarantine is not built yet: its settings are stored, but "
                       "nothing reads them",
    "ldap": "LDAP logon to the spam quarantine is not built yet: its settings are stored, but "
            "no directory is queried",
    "premium": "Premium AntiSpam is not built yet: its settings are stored, but it scores no "
               "message",
}


@dataclass(frozen=True)
class Setting:
    key: str
    kind: Kind
    default: Any
    help: str
    page: str
    restart: bool = False
    secret: str | None = None  # None | "hashed" | "stored"
    generated: Callable[[], Any] | None = None  # value made once by `init`
    # A key null only until `init` sets it, which no change may set back to null: the rule
    # that refuses null once it is set (the kind lets null in: the value before `init`).
    null_rule: str | None = None


class SettingError(ValueError):
    """One or more settings break their rules. `errors` is a list of `(key, rule)`;
    `causes` maps a key whose own value broke its kind's rule to that RuleError, whose parts
    let the console number a list's bad entries by the lines the administrator typed."""

    def __init__(self, errors: list[tuple[str, str]],
                 causes: dict[str, RuleError] | None = None):
        self.errors = errors
        self.causes = dict(causes or {})
        super().__init__("; ".join(f"{k}: {r}" for k, r in errors))

    def lines(self) -> list[str]:
        return [f"{key}: {rule}" for key, rule in self.errors]


# Console pages (one place, so forms and docs/settings.md agree on them).
PAGES = {
    "accounts": "Configuration › Accounts",
    "setup": "Configuration › Setup",
    "scan_policy": "Configuration › Scan Policy",
    "routing": "Configuration › Routing",
    "alerts": "Configuration › Alerts",
    "notifications": "Configuration › Notifications",
    "logging": "Configuration › Logging",
    "diagnostics": "Configuration › Diagnostics",
    "antivirus": "Antivirus Policy",
    "outbreak": "Antivirus Policy › Outbreak Alert",
    "whitelist": "Anti-spam Policy › Whitelist",
    "auto_whitelist": "Anti-spam Policy › Auto-generated Whitelist",
    "rbl": "Anti-spam Policy › Real-time Blacklists",
    "blacklist": "Anti-spam Policy › Custom Blacklist",
    "heuristic": "Anti-spam Policy › Heuristic Engine",
    "premium": "Anti-spam Policy › Premium AntiSpam",
    "spam_rules": "Anti-spam Policy › Spam Rules",
    "quarantine": "Spam Quarantine › Settings",
    "ldap": "Spam Quarantine › LDAP",
    "content": "Filtering Policy › Content",
    "container": "Filtering Policy › Container Limits",
    "encrypted": "Filtering Policy › Encrypted Container",
    "relay": "Filtering Policy › Anti-Relay",
    "content_rules": "Filtering Policy › Content Rules",
    "liveupdate": "LiveUpdate",
}

ALERT_EVENTS = tuple(ALERT_TEXTS)
# The metatags of violation notifications (guide Table 3-3), which core/notify.py `metatags`
# fills; ${DISPOSITION} is the administrator's only (§3 "Understanding notifications").
NOTIFY_SENDER_METATAGS = ("MSGINFO", "VIRUSINFO", "CONTENTINFO", "ENCRYPTINFO")
NOTIFY_ADMIN_METATAGS = (*NOTIFY_SENDER_METATAGS, "DISPOSITION")
OUTBREAK_METATAGS = ("COUNT", "MINUTES", "VIRUSINFO")    # core/scan/service.py fills them
_ALERTS_ON = {"service_start_improper", "low_disk", "low_memory", "failed_logons",
              "unauthorized_access", "suspect_message"}

PORT = Int(1, 65535)
# The keys of Mailmoat's own listeners' ports: distinct (shared/settings_cross_rules.py), and
# not in use by another program (shared/ports.py).
PORT_KEYS = ("smtp.port", "http.port", "https.port")
EMAILS = ListOf(Email(), max_items=100)
FORWARD_SUBJECT = Str(max_len=255, header=True)
# How a rule term is read (shared/wildcard.py), in the help of both rule lists.
RULE_TERMS_HELP = ("Terms: * is any characters within a word and ? one character; \\ "
                   "makes a * or ? plain and escapes nothing else (100\\% is refused: type "
                   "100%).")

_S: list[Setting] = []


def _add(key, kind, default, help, page, **kw):
    _S.append(Setting(key, kind, default, help, page, **kw))


def _not_built(feature: str, prefix: str, *, besides: tuple[str, ...] = ()) -> None:
    """End the help of every key added so far under `prefix` (but `besides`, keys a built
    part acts on, whose help says how) with NOT_BUILT_FEATURES[feature]."""
    for index, setting in enumerate(_S):
        if setting.key.startswith(prefix) and setting.key not in besides:
            _S[index] = replace(setting,
                                help=f"{setting.help} {NOT_BUILT_FEATURES[feature]}.")


def _forwarding_trio(prefix: str, page: str, what: str, actions: tuple[str, ...], default: str):
    _add(f"{prefix}.action", Choice(actions), default, f"What to do with {what}.", page)
    _add(f"{prefix}.forward_to", Nullable(Email()), None,
         f"Address that receives {what} when the action is forward.", page)
    _add(f"{prefix}.forward_subject", FORWARD_SUBJECT, "",
         "Subject of forwarded messages (empty = keep the original subject).", page)


# --- Accounts (guide §3 "Configuring administrator settings") ---
_add("admin.password", Nullable(Str(max_len=PASSWORD_MAX_CHARS, min_len=1)), None,
     "Administrator password (≤32 characters, case-sensitive); stored hashed.", "accounts",
     secret="hashed",
     # null would lock the administrator out: no password logs on (clispec19 B1)
     null_rule="must be set: without it the administrator cannot log on (give a new "
               "password, or use `mailmoat init --reset-admin-password`)")
_add("admin.report_only.enabled", Bool(), False,
     "Enable the report-only administrator account `report`.", "accounts")
_add("admin.report_only.password", Nullable(Str(max_len=PASSWORD_MAX_CHARS, min_len=1)), None,
     "Report-only administrator password; must differ from the administrator's.", "accounts",
     secret="hashed")
_add("admin.timeout_minutes", Int(1, 1440), 5,
     "Minutes of inactivity before a console session ends (both roles).", "accounts")
_add("admin.emails", EMAILS, [],
     "Addresses that receive notifications and alerts, and mail to the gateway's own "
     "<Postmaster>.", "accounts")

# --- Setup (guide §3 "Configuring connection and delivery options") ---
_add("smtp.port", PORT, 25, "SMTP listening port.", "setup")
_add("smtp.listen", ListOf(IpAddress(listening=True), min_items=1, max_items=16),
     ["0.0.0.0", "::"],
     "Addresses the SMTP listener binds (IPv4 and IPv6). \"::\" listens for IPv6 only (the "
     "listener sets IPV6_V6ONLY): list \"0.0.0.0\" too for IPv4. An IPv4-mapped address "
     "(::ffff:127.0.0.1) is stored as IPv4; a zone index (%eth0) is refused, and so are "
     "multicast and broadcast addresses and, when saved, an address this host does not "
     "have.", "setup")
_add("smtp.max_incoming", Int(1, 1000), 15,
     "SMTP sessions served at once; further connections wait. Another host may hold half of "
     "them, and its next connection is answered 421 (this host and relay.allowed addresses "
     "excepted). Each listener process serves at least one session, so a value below the "
     "number of listener processes (smtp.listener_processes; 0 = one per CPU core) runs only "
     "as many processes as it allows: a change that crosses that number changes the "
     "listeners, as smtp.listener_processes does.", "setup")
_add("smtp.max_outgoing", Int(1, 1000), 30,
     "Delivery connections open at once. One next hop uses at most 20 of them and, of two or "
     "more, never all (one stays for the others), so a next hop that never answers holds up "
     "no other.",
     "setup")
_add("smtp.listener_processes", Int(0, 32), 0,
     "SMTP listener processes sharing the port (0 = one per CPU core; 1 = inside the core "
     "process). A change applies live: the new listeners open before the old ones stop "
     "accepting, whose open sessions finish there (a minute at most, then 421 4.3.2); "
     "meanwhile those sessions do not count against smtp.max_incoming.", "setup")
_add("smtp.notify_from", Sender(), "Mailmoat",
     "From of alerts and notifications: a name (at smtp.hostname), a full address, or "
     "Name <address>.",
     "setup")
_add("smtp.hostname", Nullable(ServerName()), None,
     "The gateway's fully qualified DNS name, in the banner, EHLO, Received fields and the "
     "From and Message-ID of bounces (null = the machine's fully qualified name); not an IP "
     "address, a single label (mail) or localhost.",
     "setup")
_add("smtp.tls.inbound", Choice(("off", "offer")), "offer", "Offer STARTTLS to clients.", "setup")
_add("smtp.tls.outbound", Choice(("off", "opportunistic", "required")), "opportunistic",
     "STARTTLS when delivering: never, when offered, or required. It applies to every next "
     "hop, the routing.local relays included: with required, bounces and notices to your "
     "own users wait while your internal server lacks STARTTLS. The next hop's certificate "
     "is not verified (encryption, not authentication).", "setup")
_add("dns.resolvers", ListOf(Resolver(), max_items=8), [],
     "DNS servers (IP[:port]) for MX, RBL, PTR and URL lookups; empty = the system's.", "setup")
_add("dns.timeout_seconds", Int(1, 60), 5,
     "Time limit of one DNS lookup; the servers of dns.resolvers are asked in turn, the "
     "next one too after 1 s without an answer.",
     "setup")
_add("delivery.paused", Bool(), False, "Accept and process mail but deliver nothing.", "setup")
_add("delivery.reject_incoming", Bool(), False,
     "Refuse new SMTP connections with 421 service not available.", "setup")
_add("delivery.retry_days", Int(1, 30), 5,
     "Days a deferred message is retried before it bounces (and a central "
     "virus-quarantine copy before it is marked failed).", "setup")
_add("delivery.retry_initial_seconds", Int(1, 3600), 300,
     "First retry after a temporary failure; the interval then doubles.", "setup")
_add("delivery.retry_max_seconds", Int(1, 86400), 14400, "Longest retry interval.", "setup")
_add("http.port", PORT, 8003, "Console HTTP port.", "setup")
_add("https.port", PORT, 8043, "Console HTTPS port.", "setup")
_add("https.logons", Bool(), False,
     "Enable SSL & encryption for logons: logon and password pages only over HTTPS.", "setup")
_add("disclaimer.enabled", Bool(), False,
     "Append the disclaimer to messages not destined to a local-routing domain.", "setup")
_add("disclaimer.text", Str(max_len=1000, multiline=True), "", "Disclaimer text.", "setup")
_add("timezone", Timezone(), "UTC", "Time zone for display and reports (storage is UTC).",
     "setup")
_add("scan.temp_dir", Nullable(AbsolutePath(max_len=4096, min_len=1)), None,
     "Scratch directory for scanning: archives that an external tool unpacks (rar) are "
     "written there, and the low-disk check watches it (null = tmp/ in the data home).",
     "setup", restart=True)

# --- Scan policy ---
_add("scan.mode", Choice(("all", "include", "exclude")), "all",
     "Scan all files, only the included extensions, or all but the excluded ones.",
     "scan_policy")
_add("scan.include", ListOf(Extension(), max_items=500), [],
     "Extensions scanned in include mode (.ext).", "scan_policy")
_add("scan.exclude", ListOf(Extension(), max_items=500), [],
     "Extensions not scanned in exclude mode; containers are still decomposed.", "scan_policy")
_add("scan.unprocessable", Choice(("deliver", "drop", "hold")), "hold",
     "Handling of content that cannot be decoded or expanded for scanning.", "scan_policy")

# --- Routing ---
_add("routing.local", ListOf(RoutingEntry(), max_items=10_000), [],
     "Local routing list: domains (wildcards allowed) or IP addresses, with an optional relay "
     "host and port. An IP entry (192.0.2.10, 192.0.2.*, 2001:db8::10) is stored as an "
     "address literal ([192.0.2.10], [192.0.2.*], [IPv6:2001:db8::10]) and makes mail to the "
     "literals it matches (user@[192.0.2.10]) local, never a domain name; without a relay "
     "that mail goes to the literal's address.", "routing")
_add("routing.default", Nullable(HostPort()), None,
     "Default route for non-local mail (null = MX delivery).", "routing")

# --- Alerts (guide Table 3-2) ---
for _event, (_subject, _body) in ALERT_TEXTS.items():
    _add(f"alerts.{_event}", Bool(), _event in _ALERTS_ON,
         f"{ALERT_EVENT_NAMES[_event]}: send the alert “{_subject}”.", "alerts")

# --- Notifications ---
_add("notify.admin", Bool(), False, "Notify the administrator of policy violations.",
     "notifications")
_add("notify.sender", Bool(), False, "Notify the sender of policy violations.",
     "notifications")
for _who, _tags, _body in (("admin", NOTIFY_ADMIN_METATAGS, DEFAULT_NOTIFY_ADMIN_BODY),
                           ("sender", NOTIFY_SENDER_METATAGS, DEFAULT_NOTIFY_SENDER_BODY)):
    _whose = "administrator" if _who == "admin" else "sender"
    _add(f"notify.{_who}.subject", Template(max_len=255, header=True, tags=_tags),
         DEFAULT_NOTIFY_SUBJECT,
         f"Subject of {_whose} notifications (not empty; the metatags of the body).",
         "notifications")
    _add(f"notify.{_who}.body", Template(max_len=10_000, multiline=True, tags=_tags), _body,
         f"Body of {_whose} notifications (not empty; metatags "
         f"{' '.join('${' + tag + '}' for tag in _tags)}, no others).", "notifications")

# --- Logging ---
_add("logging.local", Bool(), True, "Store events locally (reports need them).", "logging")
_add("logging.retention_days", Int(7, 3650, also=(0,)), 30,
     "Days events are kept (0 = never delete).", "logging")
_add("forwarding.enabled", Bool(), False,
     "Forward events to a SIEM. While on, the events it is to forward (the guide's list) "
     "are stored locally even with `logging.local` off.", "logging")
_add("forwarding.host", Nullable(Hostname()), None, "SIEM receiver host.", "logging")
_add("forwarding.port", PORT, 6514, "SIEM receiver port.", "logging")
_add("forwarding.transport", Choice(("tcp", "tls", "udp")), "tls", "SIEM transport.", "logging")
_add("forwarding.format", Choice(("rfc5424", "cef", "json")), "rfc5424",
     "SIEM record format.", "logging")
_add("forwarding.ca_file", AbsolutePath(max_len=4096, or_empty=True), "",
     "CA file to verify the receiver (empty = system CAs).", "logging")
_not_built("siem", "forwarding.")

# --- Diagnostics ---
_DIAG = ("off", "on_error", "all")
_add("diagnostics.queue_file_save", Choice(_DIAG), "off",
     "Save queue files (the message as received and its envelope) to `queuefiles/` in the "
     "diagnostics directory: all for every accepted message, on_error for those whose "
     "processing or delivery ends in an error. Only when support asks; deleted after "
     "`logging.retention_days`.", "diagnostics")
_add("diagnostics.conversation.inbound", Choice(_DIAG), "off",
     "Log inbound SMTP conversations.", "diagnostics")
_add("diagnostics.conversation.outbound", Choice(_DIAG), "off",
     "Log outbound SMTP conversations.", "diagnostics")
_add("diagnostics.conversation.errors",
     Choice(("all", "communication", "protocol", "local", "unsupported")), "all",
     "Which errors count for on_error conversation logging.", "diagnostics")
_add("diagnostics.conversation.data", Choice(("ignore", "summarize", "echo")), "ignore",
     "How message data appears in conversation logs.", "diagnostics")

# --- Antivirus ---
_add("av.enabled", Bool(), True, "Scan messages for viruses.", "antivirus")
_add("av.engine", Choice(("builtin", "clamd", "both")), "builtin", "Antivirus engine.",
     "antivirus")
_add("av.clamd.address", ClamdAddress(max_len=4096, min_len=1), "127.0.0.1:3310",
     "clamd address: host:port or a unix socket path.", "antivirus")
_add("av.heuristics", Choice(("off", "low", "medium", "high")), "medium",
     "Heuristic detection level.", "antivirus")
_add("av.on_virus", Choice(("repair", "delete", "log")), "repair",
     "When a virus is detected: repair (if the repair succeeds the message is delivered), "
     "delete (the infected file is deleted and the message delivered) or log (the "
     "incident is logged and the file stays: av.on_not_removed then decides, and its "
     "default drops the message).", "antivirus")
_add("av.on_unrepairable", Choice(("delete", "log")), "delete",
     "If unable to repair: delete (the infected file is deleted and the message "
     "delivered) or log (the incident is logged and the file stays: av.on_not_removed "
     "then decides).", "antivirus")
_add("av.on_not_removed", Choice(("drop", "log")), "drop",
     "When an infected attachment is not repaired or deleted: drop (processing stops and "
     "the message is dropped) or log (the incident is logged and the message is delivered "
     "with the infected file).", "antivirus")
_add("av.deleted_text.enabled", Bool(), True,
     "Add text to the message when an infected attachment is deleted.", "antivirus")
_add("av.deleted_text", Str(max_len=1000, multiline=True), DEFAULT_AV_DELETED_TEXT,
     "Text added when an infected attachment is deleted (not empty while "
     "av.deleted_text.enabled is on).", "antivirus")
_add("av.mass_mailer_cleanup", Bool(), True,
     "Drop messages whose detection is a mass-mailer (@m, @mm).", "antivirus")
_add("av.quarantine", Choice(("nothing", "unrepaired", "all")), "nothing",
     "Keep a copy of infected messages in the virus quarantine.", "antivirus")
_add("av.central_quarantine", Nullable(CentralQuarantine()), None,
     "SMTP host that receives copies of infected messages, and the mailbox there "
     "(default quarantine@<host>); copies are signed with quarantine.reinsertion_key.",
     "antivirus")
_add("outbreak.enabled", Bool(), False, "Send outbreak alerts.", "outbreak")
_add("outbreak.count", Int(1, 100_000), 10, "Infected messages that make an outbreak.",
     "outbreak")
_add("outbreak.minutes", Int(1, 10_080), 60, "Period in which they must arrive.", "outbreak")
_add("outbreak.emails", EMAILS, [], "Recipients of outbreak alerts.", "outbreak")
_add("outbreak.subject", Template(max_len=255, header=True, tags=OUTBREAK_METATAGS),
     DEFAULT_OUTBREAK_SUBJECT,
     "Outbreak alert subject.", "outbreak")
_add("outbreak.body", Template(max_len=10_000, multiline=True, tags=OUTBREAK_METATAGS),
     DEFAULT_OUTBREAK_BODY, "Outbreak alert body.", "outbreak")

# --- Antispam ---
_add("whitelist.custom.enabled", Bool(), False, "Use the custom whitelist.", "whitelist")
_add("whitelist.custom", ListOf(WhitelistEntry(), max_items=10_000), [],
     "Senders that bypass heuristic and blacklist checks: @domain, .domain or address.",
     "whitelist")
_add("whitelist.auto.enabled", Bool(), False,
     "Collect outbound recipients' domains into the auto-generated whitelist.",
     "auto_whitelist")
_add("whitelist.auto.exclusions", ListOf(MailDomain(), max_items=10_000), [],
     "Domains never added to the auto-generated whitelist, each with all of its subdomains "
     "(a leading period, the guide's wildcard mark, is optional and not stored).",
     "auto_whitelist")
_add("rbl.zones", ListOf(RblZone(), max_items=RBL_MAX_ZONES, unique=False), [],
     "Real-time blacklist zones (up to 3).", "rbl")
_forwarding_trio("rbl", "rbl", "mail from listed clients", ("drop", "log", "forward", "reject"),
                 "drop")
_add("blacklist.enabled", Bool(), False, "Use the custom blacklist.", "blacklist")
_add("blacklist.entries", ListOf(BlacklistEntry(), max_items=10_000), [],
     "Blocked senders: @domain, .domain or address (wildcards in the local part).", "blacklist")
_forwarding_trio("blacklist", "blacklist", "mail from blacklisted senders",
                 ("drop", "log", "forward"), "drop")
_add("heuristic.enabled", Bool(), False, "Use the heuristic antispam engine.", "heuristic")
# The score from which each heuristic.sensitivity counts a message as spam: the engine's
# (core/scan/antispam/engine.py threshold_for) and the console's one table.
SENSITIVITY_THRESHOLDS = {1: 90, 2: 80, 3: 70, 4: 60, 5: 50}
_add("heuristic.sensitivity", Int(1, 5), 1,
     "1..5: spam at score ≥ " + ", ".join(map(str, SENSITIVITY_THRESHOLDS.values()))
     + " respectively.", "heuristic")
_add("heuristic.subject_prefix", Str(max_len=100, header=True), "[Spam]",
     "Text prepended to the subject of spam.", "heuristic")
_add("heuristic.x_bulk", Bool(), False, "Add X-Bulk: <score> to spam.", "heuristic")
_add("heuristic.drop_score", Nullable(Int(1, 100)), None,
     "Drop messages scoring at least this (null = never).", "heuristic")
_add("heuristic.forward_score", Nullable(Int(1, 100)), None,
     "Forward messages scoring at least this (null = never); lower than the drop score.",
     "heuristic")
_add("heuristic.forward_to", Nullable(Email()), None, "Address for forwarded spam.",
     "heuristic")
_add("premium.enabled", Bool(), False,
     "Use Premium AntiSpam. While on, the Status page shows its spam counts in place of the "
     "heuristic engine's and the summary report adds its section.", "premium")
_add("premium.suspected.enabled", Bool(), False, "Detect suspected spam.", "premium")
_add("premium.suspected.threshold", Int(25, 89), 72,
     "Score from which a message is suspected spam (90-100 is spam).", "premium")
_add("premium.reputation.open_proxy", Bool(), True, "Use the open proxy list.", "premium")
_add("premium.reputation.safe", Bool(), True, "Use the safe list.", "premium")
for _level, _score in (("spam", 100), ("suspected", 89)):
    _add(f"premium.{_level}.disposition", Choice(("drop", "quarantine", "forward", "deliver"),
                                                 withheld=("quarantine",)),
         "deliver", f"Disposition of {_level} messages (not quarantine until the spam "
         "quarantine is built).", "premium")
    _add(f"premium.{_level}.forward_to", Nullable(Email()), None,
         f"Address for forwarded {_level} messages.", "premium")
    _add(f"premium.{_level}.x_bulk", Bool(), False,
         f"Add X-Bulk: {_score} when delivering. While on, an X-Bulk field the sender wrote "
         "is removed from delivered mail.", "premium")
    _add(f"premium.{_level}.spam_folder", Bool(), False,
         "Add X-Mailmoat-Folder: spam when delivering. While on, an X-Mailmoat-Folder field "
         "the sender wrote is removed from delivered mail.", "premium")
    _add(f"premium.{_level}.subject_prefix", Str(max_len=100, header=True), "(Spam)",
         "Text prepended to the subject when delivering.", "premium")
_add("premium.language.enabled", Bool(), False,
     "Identify the message language. While on, an X-Mailmoat-Language field the sender "
     "wrote is removed from delivered mail.", "premium")
_add("premium.language.blocked", ListOf(Choice(tuple(
    "aa ab af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy "
    "da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht "
    "hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky "
    "la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny "
    "oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss "
    "st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo "
    "za zh zu".split()))), [], "Languages (ISO 639-1) whose mail is treated as spam.",
     "premium")
_add("premium.url_filtering", Bool(), True, "URL filtering (premium).", "premium")
_add("premium.signature_filtering", Bool(), True, "Signature (fuzzy) filtering (premium).",
     "premium")
_not_built("premium", "premium.")
_add("rules.body_scanning", Bool(), True,
     "Spam and content rules look at the message text, not only the Subject.", "spam_rules")
_add("rules.spam", ListOf(Rule(), max_items=RULES_MAX_TOTAL, unique=False), [],
     "Spam rules: a match makes the message spam with score 100. " + RULE_TERMS_HELP,
     "spam_rules")

# --- Spam quarantine ---
_add("quarantine.mode", Choice(("admin_only", "users")), "admin_only",
     "Who sees the spam quarantine: the administrator only, or users after LDAP logon.",
     "quarantine")
_add("quarantine.notify.frequency_hours", Int(1, 168), 24, "Hours between digests.",
     "quarantine")
_add("quarantine.notify.time", TimeOfDay(), "04:00", "Time of the first digest of the day.",
     "quarantine")
_add("quarantine.notify.distribution_lists", Bool(), False,
     "Send digests to distribution lists too.", "quarantine")
_add("quarantine.notify.from", Nullable(Email()), None, "From address of digests.",
     "quarantine")
_add("quarantine.notify.subject", Str(max_len=255, header=True), "Your Suspected Spam Summary",
     "Subject of digests.", "quarantine")
_add("quarantine.notify.template_user", Str(max_len=20_000, multiline=True),
     DEFAULT_QUARANTINE_TEMPLATE_USER, "Digest template for users.", "quarantine")
_add("quarantine.notify.template_list", Str(max_len=20_000, multiline=True),
     DEFAULT_QUARANTINE_TEMPLATE_LIST, "Digest template for distribution lists.", "quarantine")
_add("quarantine.notify.format", Choice(("multipart", "html", "text")), "html",
     "Digest format.", "quarantine")
_add("quarantine.notify.view_link", Bool(), True, "Include a View link per message.",
     "quarantine")
_add("quarantine.notify.release_link", Bool(), True, "Include a Release link per message.",
     "quarantine")
_add("quarantine.misidentified.admin", Nullable(Email()), None,
     "Copy of released “not spam” messages to this address.", "quarantine")
_add("quarantine.max_total_mb", Int(1, 10_485_760), 10240, "Quarantine size limit (MB).",
     "quarantine")
_add("quarantine.max_user_mb", Int(1, 1_048_576), 1024, "Per-user size limit (MB).",
     "quarantine")
_add("quarantine.max_messages", Int(1, 1_000_000_000), 10_000_000, "Message count limit.",
     "quarantine")
_add("quarantine.max_user_messages", Int(1, 10_000_000), 10_000, "Per-user message limit.",
     "quarantine")
_add("quarantine.delete_unresolved", Bool(), False,
     "Delete messages whose recipient matches no LDAP user.", "quarantine")
_add("quarantine.retention_days", Int(1, 3650), 7, "Days messages are kept.", "quarantine")
_add("quarantine.page_size", Int(10, 1000), 200, "Messages per quarantine page.",
     "quarantine")
_add("quarantine.login_help_url", Str(max_len=2048), "", "Link shown on the logon page.",
     "quarantine")
_add("quarantine.reinsertion_key", Nullable(Str(max_len=128, min_len=16)), None,
     "Key that signs the copies sent to a central virus quarantine (`av.central_quarantine`) "
     "and checks those received; set the same key on both hosts (generated). Its other use, "
     "letting mail released from the spam quarantine skip antispam when reinserted over "
     "SMTP, comes with the spam quarantine.",
     "quarantine", secret="stored", generated=lambda: _secrets.token_urlsafe(32))
_not_built("spam_quarantine", "quarantine.", besides=("quarantine.reinsertion_key",))
_add("ldap.server", Nullable(Hostname()), None, "LDAP server.", "ldap")
_add("ldap.port", PORT, 389, "LDAP port.", "ldap")
_add("ldap.tls", Choice(("off", "starttls", "ldaps")), "off", "LDAP transport security.",
     "ldap")
_add("ldap.type", Choice(tuple(LDAP_AUTOFILL)), "active_directory", "Directory type.", "ldap")
_add("ldap.bind_dn", Str(max_len=1024), "", "Bind DN (empty = anonymous).", "ldap")
_add("ldap.password", Nullable(Str(max_len=1024)), None, "Bind password.", "ldap",
     secret="stored")
_add("ldap.domains", ListOf(Domain(), max_items=1000), [], "Mail domains of the directory.",
     "ldap")
_add("ldap.base_dn", Str(max_len=1024), "", "Query start (base DN).", "ldap")
_add("ldap.filter", Str(max_len=2048), LDAP_AUTOFILL["active_directory"]["filter"],
     "Query filter.", "ldap")
_add("ldap.login_attr", Str(max_len=128), LDAP_AUTOFILL["active_directory"]["login_attr"],
     "User login name attribute.", "ldap")
_add("ldap.mail_attr", Str(max_len=128), LDAP_AUTOFILL["active_directory"]["mail_attr"],
     "Primary email attribute.", "ldap")
_add("ldap.alias_attr", Str(max_len=128), LDAP_AUTOFILL["active_directory"]["alias_attr"],
     "Email alias attribute.", "ldap")
_not_built("ldap", "ldap.")

# --- Filtering (guide §6) ---
_add("size.enabled", Bool(), False, "Refuse messages over size.max_mb.", "content")
_add("size.max_mb", Int(1, 2047), 50, "Largest message accepted (MB).", "content")
_add("subject.enabled", Bool(), False, "Block subject lines.", "content")
_add("subject.lines", ListOf(Pattern(), max_items=10_000), [],
     "Subject patterns (* and ? wildcards, matched against the whole subject).", "content")
_forwarding_trio("subject", "content", "messages with a blocked subject",
                 ("drop", "log", "forward"), "drop")
_add("filename.enabled", Bool(), False, "Delete attachments with the listed names.",
     "content")
_add("filename.patterns", ListOf(Pattern(), max_items=10_000), list(DEFAULT_BLOCKED_EXTENSIONS),
     "Attachment name patterns (one per line).", "content")
_add("filename.deleted_text.enabled", Bool(), True,
     "Add text to the message when an attachment is deleted.", "content")
_add("filename.deleted_text", Str(max_len=1000, multiline=True), DEFAULT_FILENAME_DELETED_TEXT,
     "Text added when an attachment is deleted (not empty while "
     "filename.deleted_text.enabled is on).", "content")
_add("container.enabled", Bool(), True, "Enforce container limits.", "container")
_add("container.max_depth", Int(1, 100), 10, "Deepest nesting of archives and attached messages.",
     "container")
_add("container.max_files", Int(1, 1_000_000), 5000, "Most files in one message.", "container")
_add("container.max_total_mb", Int(1, 100_000), 200, "Most MB extracted from one message.",
     "container")
_add("container.max_file_mb", Int(1, 100_000), 100, "Largest extracted file (MB).", "container")
_add("container.max_ratio", Int(1, 100_000), 100, "Highest compression ratio.", "container")
_forwarding_trio("encrypted", "encrypted", "messages with encrypted containers",
                 ("delete", "drop", "log", "forward"), "delete")
_add("relay.mode", Choice(("allow", "deny_except")), "deny_except",
     "Who may relay, that is send mail through the gateway to a destination that is not "
     "local (not in routing.local): allow lets any client relay (an open relay: spammers find "
     "such gateways and send through them, and receivers then refuse the gateway's own "
     "mail); deny_except lets only the clients in relay.allowed relay. Mail to a local "
     "destination is never refused as relaying.", "relay")
# The Anti-Relay page's two choices (the guide's, §6 "To configure external relay
# restrictions", the first spelt out: a bare "Allow" just above "Allowed hosts" read as
# "allow the hosts below", and one click made an open relay: dayone17 finding 1).
RELAY_MODE_LABELS = {"allow": "Allow any client to relay (an open relay)",
                     "deny_except": "Do not allow, except for listed hosts"}
# What the Anti-Relay page, the Status page and the core's start say while relay.mode is
# allow (dayone17 finding 1: one click opened the relay, and nothing said so).
OPEN_RELAY_WARNING = (
    f"Relay is set to \"{RELAY_MODE_LABELS['allow']}\" (relay.mode allow): Mailmoat relays "
    "mail from any client to any destination. Spammers find open relays and send through them, and "
    "receivers then refuse the gateway's own mail. Choose "
    f"\"{RELAY_MODE_LABELS['deny_except']}\" on Filtering Policy › Anti-Relay (relay.mode "
    "deny_except) and list your own network under Allowed hosts.")
_add("relay.allowed", ListOf(RelayEntry(), max_items=10_000), [],
     "Clients allowed to relay: host names (forward-confirmed PTR), IPs, CIDRs, *.domain, "
     "1.2.3.*, 1.2.*, 1.*. IPv4-mapped IPv6 entries (::ffff:10.0.0.0/104) are stored in their "
     "IPv4 form (10.0.0.0/8), the form IPv4 clients arrive in.", "relay")
_add("address_chars.enabled", Bool(), False,
     "Reject recipients containing the listed characters.", "relay")
_add("address_chars.chars", AddressCharacters(max_len=32, min_len=1), "!%",
     "Characters refused in recipients, each once (no spaces or commas; not @ or ., which "
     "every address has).", "relay")
_add("rules.content", ListOf(Rule(), max_items=RULES_MAX_TOTAL, unique=False), [],
     "Content rules. " + RULE_TERMS_HELP, "content_rules")
_add("rules.content_action", Choice(("drop", "log", "forward", "quarantine"),
                                   withheld=("quarantine",)), "drop",
     "What to do with messages that match a content rule (not quarantine until the spam "
     "quarantine is built).", "content_rules")
_add("rules.content_forward_to", Nullable(Email()), None,
     "Address for messages forwarded by content rules.", "content_rules")
_add("rules.content_forward_subject", FORWARD_SUBJECT, "",
     "Subject of messages forwarded by content rules.", "content_rules")

# --- LiveUpdate ---
_add("liveupdate.enabled", Bool(), False, "Run LiveUpdate on a schedule.", "liveupdate")
_add("liveupdate.days", ListOf(Weekday(), max_items=7), list(Weekday.DAYS),
     "Days LiveUpdate runs.", "liveupdate")
_add("liveupdate.first", TimeOfDay(), "06:00", "First run of the day.", "liveupdate")
_add("liveupdate.every_hours", Int(1, 24), 4, "Hours between runs until midnight.",
     "liveupdate")
_add("liveupdate.source", UpdateSource(max_len=4096), "",
     "Update source: an http(s) URL or a local directory.", "liveupdate")
_add("liveupdate.drop_dir", AbsolutePath(max_len=4096, or_empty=True), "",
     "Directory watched for dropped definitions packages.", "liveupdate")
_not_built("liveupdate", "liveupdate.")
_add("definitions.trusted_keys", ListOf(Base64Key(), max_items=32), [],
     "Ed25519 public keys whose definitions signatures are accepted.", "liveupdate")

SCHEMA: dict[str, Setting] = {s.key: s for s in _S}
assert len(SCHEMA) == len(_S), "a settings key is declared twice"


def defaults() -> dict[str, Any]:
    """Every key with its default (generated keys as None: `init` makes their values)."""
    return {key: _copy(s.default) for key, s in SCHEMA.items()}


def generated_values() -> dict[str, Any]:
    """Fresh values for the keys that `init` generates once."""
    return {key: s.generated() for key, s in SCHEMA.items() if s.generated}


def is_secret(key: str) -> bool:
    return SCHEMA[key].secret is not None


def display_value(key: str, value: Any) -> Any:
    """What `config get` prints, and an object_modified event records (changes_shown), so
    every report, alert and page that shows a value: secrets as "***" (set) or null, and the
    credentials of a URL value as "***" (_masked_url)."""
    if is_secret(key):
        return None if value is None else SECRET_MASK
    if isinstance(value, str):
        return _masked_url(value)
    return value


# A value that is a URL may carry credentials though its key is no secret:
# liveupdate.source takes `https://user:token@host/` (review20c R3: the Configuration Change
# alert mailed the token off the machine). The userinfo is everything before the last "@"
# of the authority (RFC 3986 §3.2.1); a user alone may be the token, so it is masked too.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#]*)@")


def _masked_url(value: str) -> str:
    """`value` with a URL's credentials as "***": `https://user:***@host/`, or
    `https://***@host/` for a user alone; any other text as it is."""
    match = _URL_USERINFO.match(value)
    if match is None:
        return value
    user, colon, _password = match["userinfo"].partition(":")
    shown = f"{user}:{SECRET_MASK}" if colon else SECRET_MASK
    return f"{match['scheme']}{shown}@{value[match.end():]}"


def _is_masked_url(value: Any) -> bool:
    """Whether `value` is a URL whose credentials are the mask (`config get` output)."""
    return isinstance(value, str) and _URL_USERINFO.match(value) is not None \
        and _masked_url(value) == value


def changes_shown(changed: dict[str, tuple]) -> dict[str, list]:
    """{key: (old, new)} as an object_modified event records it: {key: [old, new]}, secrets
    as "***" (display_value)."""
    return {key: [display_value(key, old), display_value(key, new)]
            for key, (old, new) in changed.items()}


def hash_password(plain: str) -> str:
    return generate_password_hash(plain)


def check_password(stored_hash: str | None, plain: str) -> bool:
    if not stored_hash:
        return False
    try:
        return check_password_hash(stored_hash, plain)
    except ValueError:  # a malformed "hash" (hand-edited import) matches nothing
        return False


def _looks_like_hash(value: Any) -> bool:
    """Too long for a password and named like a hash: a stored hash given back, or a damaged
    one. Either way never a plain password."""
    return isinstance(value, str) and len(value) > PASSWORD_MAX_CHARS \
        and value.startswith(_HASH_PREFIXES)


def _is_stored_hash(value: Any, *, try_it: bool = True) -> bool:
    """True for a hash `check_password` can check within the work limits. `try_it` False:
    its form and work limits only, without the (costly) trial hashing."""
    if not _looks_like_hash(value):
        return False
    match = _STORED_HASH.match(value)
    if match is None:
        return False
    if match["n"] is not None:
        n, r, p = int(match["n"]), int(match["r"]), int(match["p"])
        if n < 2 or n & (n - 1) or n * r * p > SCRYPT_MAX_COST:  # n: a power of 2 (RFC 7914 §2)
            return False
        digest_chars = _DIGEST_HEX_CHARS["scrypt"]
    else:
        if int(match["iterations"]) > PBKDF2_MAX_ITERATIONS:
            return False
        digest_chars = _DIGEST_HEX_CHARS[match["hash"]]
    if len(match["digest"]) != digest_chars:
        return False
    if not try_it:
        return True
    try:                        # what a logon does with it; a wrong password, not an error
        check_password_hash(value, "")
    except (ValueError, MemoryError):
        return False
    return True


def read_json(text: str) -> Any:
    """The JSON value `text` holds, as a setting's value is read from the command line or a
    file. An integer of any length is read (Python's json refuses one of more than 4300
    digits) as `integer_from_text` reads it: one past every range is ±10**INTEGER_MAX_DIGITS,
    and the kind's range is the message. Raises json.JSONDecodeError for text that is not
    JSON, and RecursionError for a value nested deeper than Python's json reads."""
    import json

    return json.loads(text, parse_int=integer_from_text)


# JSON nested deeper than Python's json reads (RecursionError); no setting's value is more
# than a few levels deep.
TOO_DEEP_RULE = "must be JSON nested at most a few levels deep ([ ] and { } within each other)"


# A JSON number without fraction or exponent (RFC 8259 §6), spaces around allowed as JSON does
_JSON_INTEGER = re.compile(r"[ \t\n\r]*-?(?:0|[1-9][0-9]*)[ \t\n\r]*\Z")


def parse_cli_value(key: str, text: str) -> Any:
    """SPEC §2: for a text key the argument is the string itself unless it is a JSON string
    literal; for other keys it is JSON. Raises SettingError naming the key; an integer key's
    argument that is not JSON is returned as text, so validation names the digits it takes."""
    import json

    setting = _known(key)
    if setting.kind.is_text or setting.secret == "hashed":
        if text == "null" and isinstance(setting.kind, Nullable):
            return None                 # back to "not set"; '"null"' is the word itself
        if text.startswith('"'):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                pass
        return text
    is_integer = isinstance(setting.kind, Int) or (isinstance(setting.kind, Nullable)
                                                   and isinstance(setting.kind.inner, Int))
    if is_integer and _JSON_INTEGER.match(text):
        # as json.loads reads it, but a number of thousands of digits too (json.loads raises
        # ValueError past 4300): out of range, and the range is the message
        return integer_from_text(text)
    try:
        return read_json(text)
    except RecursionError:
        raise SettingError([(key, TOO_DEEP_RULE)]) from None
    except json.JSONDecodeError:
        if is_integer:
            return text     # "٣", "25abc": the Int kind's rule names the digits it takes
        raise SettingError([(key, "must be JSON (for example 25, true, [\"a\"], null)")]) from None


def _known(key: str) -> Setting:
    try:
        return SCHEMA[key]
    except KeyError:
        raise SettingError([(key, "unknown setting")]) from None


def validate_changes(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Check `changes` against `current` (a full settings dict as stored).

    Returns the normalised changes (passwords hashed) ready to store. Raises SettingError with
    every broken rule, single-key and cross-key, when anything is wrong; callers then change
    nothing. Only what the changes touch is checked: their own values, and the cross rules
    that read one of their keys (settings_cross_rules.CrossRule) — a stored value that a rule
    added since refuses does not block edits of other keys (`refused_values` lists it).
    """
    errors: list[tuple[str, str]] = []
    causes: dict[str, RuleError] = {}
    normalised: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in SCHEMA:
            errors.append((key, "unknown setting"))
            continue
        setting = SCHEMA[key]
        if setting.secret is not None and value == SECRET_MASK:
            errors.append((key, SECRET_MASK_RULE))
            continue
        if _is_masked_url(value):
            errors.append((key, URL_MASK_RULE))
            continue
        if value is None and setting.null_rule is not None and current.get(key) is not None:
            errors.append((key, setting.null_rule))
            continue
        try:
            check_encodable(value)      # before a kind, or a password hashing, meets one
        except RuleError as exc:
            errors.append((key, exc.rule))
            causes[key] = exc
            continue
        if setting.secret == "hashed" and _looks_like_hash(value):
            if _is_stored_hash(value):
                normalised[key] = value
            else:
                errors.append((key, STORED_HASH_RULE))
            continue
        try:
            normalised[key] = setting.kind.check(value)
        except RuleError as exc:
            errors.append((key, exc.rule))
            causes[key] = exc

    # The cross rules too, all at once (an import names every key to correct in one go),
    # on what can be judged: not those reading a value just refused, nor a stored value
    # that breaks its own kind (review 13, B3: stored retry_max_seconds "600" made an edit
    # of retry_initial_seconds a TypeError). They expect valid values.
    changed, refused = set(normalised), set(changes) - set(normalised)
    rules = [rule for rule in _cross.CROSS_RULES if rule.reads_any(changed)]
    stored, broken = _stored_values(current, {key for rule in rules for key in rule.keys}
                                    - changed - refused)
    merged = {**current, **stored, **normalised}
    plain = {k: v for k, v in normalised.items()
             if SCHEMA[k].secret == "hashed" and v is not None and not _is_stored_hash(v)}
    errors.extend(_cross.cross_errors(rules, merged, plain, changed,
                                      refused | {key for key, _rule in broken}))
    if errors:
        raise SettingError(errors, causes)
    for key, value in plain.items():
        normalised[key] = hash_password(value)
    return normalised


def refused_values(stored: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`(key, rule)` for every value of `stored` (a full settings dict, as `load` reads it)
    that the current rules refuse, single-key and cross-key, in the schema's order.

    An older release may have stored a value that a rule added since refuses. It stays and is
    used (validate_changes checks only what an edit touches, so it blocks no other edit);
    this is how an administrator learns of it (the Status page lists it). Never raises for a
    stored value: one that breaks its own kind is listed, and the cross rules reading it are
    left out (they expect valid values).
    """
    values, errors = _stored_values(stored, SCHEMA)
    errors.extend(_cross.cross_errors(_cross.CROSS_RULES, values, {}, set(SCHEMA),
                                      {key for key, _rule in errors}, stored=True))
    order = {key: index for index, key in enumerate(SCHEMA)}
    return sorted(errors, key=lambda error: order[error[0]])


def _stored_values(stored: Mapping[str, Any], keys: Iterable[str]
                   ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The values of `keys` in `stored` (a key not stored reads as its default) as their
    kinds read them, and `(key, rule)` for each value its kind refuses, which is given as
    stored. Never raises for a stored value."""
    values: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for key in keys:
        setting = SCHEMA[key]
        value = values[key] = stored.get(key, setting.default)
        if setting.secret == "stored" and value == SECRET_MASK:
            errors.append((key, SECRET_MASK_STORED_RULE))
            continue
        if setting.secret == "hashed":
            # unlike a given value, never plain text; its form only (trying costs a hashing)
            if value is not None and not _is_stored_hash(value, try_it=False):
                errors.append((key, STORED_HASH_RULE))
            continue
        try:
            values[key] = setting.kind.check(value)
        except RuleError as exc:
            errors.append((key, exc.rule))
    return values, errors


def _copy(value):
    import copy
    return copy.deepcopy(value)


# Last: the cross rules read SCHEMA and check_password from this module, so they load once
# those exist (and a module bound this way loads in either order).
from shared import settings_cross_rules as _cross  # noqa: E402
