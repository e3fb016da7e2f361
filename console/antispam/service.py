"""Anti-spam Policy services: saving the pages' settings, the auto-generated whitelist
(read from the core's table; changes requested as commands), spam rules and RBL zones.

Spam rules are edited one at a time in the list `rules.spam`. An edit or a delete names the
rule by its index and the rule as the page showed it (console.settings_service.check_rule_shown,
as content rules do), so a list changed meanwhile is refused rather than the wrong rule
changed. Every edit of part of a list (a rule, a move) is made to the list as stored
(`edit_list`), so edits at the same moment from two tabs all land.

The auto-generated whitelist (ARCHITECTURE invariant 4) is written by the core only. The
console reads `auto_whitelist`; "Add to Custom Whitelist" and "Add to Exclusion List" are
settings the console writes itself (whitelist.custom gets "@domain", whitelist.auto.exclusions
"domain") and then asks the core, with the command "whitelist.auto.delete", to drop the moved
entries; "Delete" is that command alone. The core applies a command within a second.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from console.context import request_db, settings
from console.schema_forms import rule_by_line, text_lines
from console.settings_service import (check_rule_name, check_rule_shown, edit_list,
                                      pending_command_items, save_settings, submit_command)
from shared.commands import Command
from shared.idn import entry_form, exclusion_set, is_excluded, unicode_domain
from shared.settings import SCHEMA, SENSITIVITY_THRESHOLDS, SettingError
from shared.settings_types import RuleError

__all__ = ["AutoEntry", "Moved", "auto_entries", "listed_entries", "sld_key",
           "move_auto_entries", "move_warnings",
           "custom_whitelist_off",
           "save_rbl", "rbl_rows", "zone_error_fields", "SECOND_LEVEL_SUFFIXES",
           "blacklisted_whole_domains",
           "CUSTOM_WHITELIST_OFF", "save_rule", "rule_at", "delete_rule",
           "AUTO_ACTIONS", "ZONE_REPEATS"]

AUTO_ACTIONS = ("to_custom", "to_exclusions", "delete")


@dataclass(frozen=True)
class AutoEntry:
    domain: str
    count: int
    first_seen: float
    last_seen: float
    excluded: bool
    whitelisted_by: str | None = None       # the custom whitelist entry that covers it

    @property
    def status(self) -> str:
        """The Status column: excluded, and whether the custom whitelist covers it already
        (tester29a A2: nothing said so before a move that then added nothing)."""
        return "; ".join(filter(None, (
            "excluded" if self.excluded else "",
            f"on the custom whitelist ({self.whitelisted_by})" if self.whitelisted_by else "")))

    @property
    def shown(self) -> str:
        """The domain as a reader writes it: an internationalised one in U-labels, which the
        page shows beside the A-labels it is stored in and sorts by (tester27b C3)."""
        return unicode_domain(self.domain) or self.domain

    @property
    def label(self) -> str:
        """What the list and its Delete confirmation show: both forms when they differ."""
        return self.domain if self.shown == self.domain else f"{self.shown} ({self.domain})"


# Public suffixes of two labels under which organisations register their names, so that
# "mail.example.co.uk" sorts under "example", not under "co". The Public Suffix List has
# about 10,000 rules and changes monthly; for ordering a page, the common multi-label suffixes
# an administrator meets are enough, and a short list here needs no package, no download and
# no update, and sorts the same on every machine. A suffix missing here only sorts its
# domains under their second label, as before.
SECOND_LEVEL_SUFFIXES = frozenset(f"{label}.{tld}" for tld, labels in {
    "ar": "com gob net org", "at": "ac co gv or", "au": "asn com edu gov id net org",
    "bd": "com", "br": "com edu gov net org", "cn": "ac com edu gov net org",
    "co": "com edu gov net org", "cy": "ac com", "eg": "com edu gov", "es": "com org",
    "gr": "com edu gov", "hk": "com edu gov net org", "hu": "co", "id": "ac co go or",
    "il": "ac co gov org", "in": "ac co edu firm gen gov ind net org",
    "jp": "ac ad co ed go gr lg ne or", "ke": "ac co go or", "kr": "ac co go ne or",
    "lk": "com", "mt": "com", "mx": "com edu gob org", "my": "com edu gov net org",
    "ng": "com edu gov org", "nz": "ac co govt net org school", "pe": "com gob", "ph": "com",
    "pk": "com edu gov", "pl": "com net org", "ru": "com", "sa": "com edu gov",
    "sg": "com edu gov net org", "th": "ac co go in or", "tr": "com edu gov net org",
    "tw": "com edu gov net org", "ua": "com gov net org",
    "uk": "ac co gov ltd me net nhs org plc police", "uy": "com", "ve": "com",
    "vn": "com edu gov net", "za": "ac co gov net org",
}.items() for label in labels.split())


def sld_key(domain: str) -> tuple:
    """Sort by 2nd-level domain (guide §5): by the name registered under the public suffix
    ("something" of "something.com" or "something.co.uk") with that suffix, then by the
    lower levels, left to right from the top."""
    labels = domain.split(".")
    if len(labels) < 2:
        return (domain,)
    suffix = 2 if ".".join(labels[-2:]) in SECOND_LEVEL_SUFFIXES and len(labels) > 2 else 1
    return (labels[-suffix - 1], ".".join(labels[-suffix:]),
            *reversed(labels[:-suffix - 1]))


def _learned_rows() -> list:
    try:
        return request_db().execute(
            "SELECT domain, count, first_seen, last_seen FROM auto_whitelist").fetchall()
    except sqlite3.OperationalError:          # a database from before migration 0003
        return []


def _listed() -> set[str]:
    """The domains the page lists: learned, and not leaving already (a move or delete the
    core has not carried out yet)."""
    leaving = pending_command_items(Command.WHITELIST_AUTO_DELETE, "domains")
    return {row["domain"] for row in _learned_rows()} - leaving


def auto_entries(sort: str = "frequency") -> list[AutoEntry]:
    rows = _learned_rows()
    # the core's answer (shared/idn.py), the list put in its one form once per page
    excluded = exclusion_set(settings()["whitelist.auto.exclusions"])
    custom = _domain_entries(settings()["whitelist.custom"])
    leaving = pending_command_items(Command.WHITELIST_AUTO_DELETE, "domains")
    entries = [AutoEntry(r["domain"], r["count"], r["first_seen"], r["last_seen"],
                         is_excluded(r["domain"], excluded), _whitelisted_by(r["domain"], custom))
               for r in rows if r["domain"] not in leaving]
    if sort == "domain":
        return sorted(entries, key=lambda e: sld_key(e.shown))
    return sorted(entries, key=lambda e: (-e.count, e.first_seen, e.shown))


def listed_entries(domains: list[str], sort: str = "frequency") -> list[AutoEntry]:
    """The entries of `domains` (as a list management form posts them) that the page lists,
    as it shows them, for the confirmation of their Delete: those gone since (moved or
    deleted in another tab, evicted by the core) are left out, as `move_auto_entries`
    leaves them out of the Delete."""
    wanted = {d.strip().lower() for d in domains if d.strip()}
    return [entry for entry in auto_entries(sort) if entry.domain in wanted]


# Said beside "Add to Custom Whitelist" while the custom whitelist is off, and again after a
# move to it (antispam21 B2: said only after the move, when the domains had already stopped
# being whitelisted).
CUSTOM_WHITELIST_OFF = ("The custom whitelist is disabled (whitelist.custom.enabled is off): "
                        "entries added to it leave this list at once, and whitelist nothing "
                        "until it is enabled on the Whitelist page.")


def below_spam_score(values) -> list[str]:
    """The Heuristic Engine page's warnings about the stored settings (tester27b C1): a drop
    or forward score below the sensitivity's spam score acts on mail the engine does not
    count as spam (SPEC §3: those compare the score itself), a drop score of 1 on all mail."""
    checked = _as_checked(values, "heuristic.sensitivity", "heuristic.drop_score",
                          "heuristic.forward_score", "heuristic.forward_to")
    if checked is None:
        return []
    sensitivity, drop, forward, forward_to = checked
    threshold = SENSITIVITY_THRESHOLDS[sensitivity]
    out = []
    for score, verb in ((drop, "dropped"), (forward, "forwarded")):
        if score is None or score >= threshold or (verb == "forwarded" and not forward_to):
            continue
        out.append(f"Messages scoring {score} or more are {verb}, though sensitivity "
                   f"{sensitivity} counts only a score of {threshold} or more as spam"
                   + (": every message is dropped." if score == 1 and verb == "dropped"
                      else "."))
    return out


def whole_domains(values) -> list[str]:
    """The Whitelist page's warning about entries that name a whole top-level domain
    (tester27b C4) or a public suffix (`.co.uk`): every sender there gets past the
    blacklists and the heuristic engine. Warned, not refused: an administrator may mean
    `.gov`. (`@com` is that domain alone, no sender's.)"""
    checked = _as_checked(values, "whitelist.custom.enabled", "whitelist.custom")
    if checked is None or not checked[0]:
        return []
    whole = _whole_domain_entries(checked[1], ".")
    if not whole:
        return []
    return [f"{', '.join(whole)} whitelist{'s' if len(whole) == 1 else ''} every sender in "
            f"{'that' if len(whole) == 1 else 'each'} top-level domain or public suffix: they "
            f"bypass the custom blacklist, the real-time blacklists and the heuristic engine."]


def blacklisted_whole_domains(values) -> list[str]:
    """The Custom Blacklist page's warning (tester29a A1), as the Whitelist page's: an entry
    naming a whole top-level domain or public suffix (`@com`, `.co.uk`) blocks every sender
    there, since a blacklist entry takes in the domain's subdomains; with the default action
    drop, a slip (`@com` for `@foo.com`) deletes most mail. Warned, not refused."""
    checked = _as_checked(values, "blacklist.enabled", "blacklist.entries", "blacklist.action")
    if checked is None or not checked[0]:
        return []
    whole = _whole_domain_entries(checked[1], "@.")
    if not whole:
        return []
    return [f"{', '.join(whole)} block{'s' if len(whole) == 1 else ''} every sender in "
            f"{'that' if len(whole) == 1 else 'each'} top-level domain or public suffix: the "
            f"blacklist's action ({checked[2]}) applies to all of their mail."]


def _whole_domain_entries(entries, marks: str) -> list[str]:
    """The entries starting with one of `marks` (`@`, `.`) that name a top-level domain or
    a public suffix."""
    return [entry for entry in entries if entry[:1] and entry[:1] in marks and (
        "." not in entry[1:] or entry[1:] in SECOND_LEVEL_SUFFIXES)]


def one_label_zones(values) -> list[str]:
    """The Real-time Blacklists page's warning (tester27b C4): a zone of one label (`com`)
    is a top-level domain, not a blacklist; every lookup under it finds nothing."""
    checked = _as_checked(values, "rbl.zones")
    if checked is None:
        return []
    return [f"Zone {zone['zone']} is a top-level domain, not a blacklist: its lookups list no "
            f"client." for zone in checked[0] if zone["enabled"] and "." not in zone["zone"]]


def _as_checked(values, *keys) -> list | None:
    """The stored `keys` as their kinds read them, or None when one breaks its rule (a value
    an older release stored): a page's warning is then left out, not the page (review27c
    R2; the page's form says what is wrong)."""
    try:
        return [SCHEMA[key].kind.check(values[key]) for key in keys]
    except RuleError:
        return None


def custom_whitelist_off() -> bool:
    """Is the custom whitelist switched off, so that a move to it ends the moved domains'
    whitelisting (CUSTOM_WHITELIST_OFF)?"""
    return not settings()["whitelist.custom.enabled"]


def move_warnings(action: str) -> list[str]:
    """What an administrator must know after `move_auto_entries(action, ...)`: entries moved
    to a custom whitelist that is off whitelist nothing (and no longer auto-whitelist)."""
    if action == "to_custom" and custom_whitelist_off():
        return [CUSTOM_WHITELIST_OFF]
    return []


@dataclass
class Moved:
    """What `move_auto_entries` did: the entries that left the auto-generated list (moved or
    deleted), and of those moved, the ones the target list held or covered already, which
    were not added (tester29a A2: "2 entries: added" when one was there already)."""
    count: int
    already: list[str]


def move_auto_entries(action: str, domains: list[str], *, user: str,
                      client_ip: str | None) -> Moved:
    """Guide §5 list management. Raises SettingError when a move breaks a setting's rule.

    Delete counts, and asks the core to delete, only the entries the page lists (`_listed`):
    a stale page or a forged request may name domains the list does not hold (0: nothing
    to delete, no command). A move adds what it names, learned or not: each is a valid
    entry of the target list, which checks it. An entry the target list covers already is
    not added, and leaves the auto-generated list all the same: in the custom whitelist
    `@domain` in either form of the domain (shared/idn.py `entry_form`, as the lists
    compare) or a `.domain` wildcard of it or a parent; in the exclusion list the domain or
    a parent (`is_excluded`)."""
    if action not in AUTO_ACTIONS:
        raise ValueError(action)
    domains = sorted({d.strip().lower() for d in domains if d.strip()})
    if action == "delete":
        listed = _listed()
        domains = [d for d in domains if d in listed]
    if not domains:
        return Moved(0, [])

    def add_to_custom(entries: list[str]) -> list[str]:
        covered, already = _domain_entries(entries), []
        for domain in domains:
            if _whitelisted_by(domain, covered):
                already.append(domain)
            else:
                entries.append(f"@{domain}")
                covered.add(entry_form(f"@{domain}"))
        return already

    def add_to_exclusions(entries: list[str]) -> list[str]:
        already = []
        for domain in domains:
            if is_excluded(domain, entries):
                already.append(domain)
            else:
                entries.append(domain)
        return already

    already = []
    if action != "delete":      # made on this page, whatever page edits the list
        key, add = (("whitelist.custom", add_to_custom) if action == "to_custom" else
                    ("whitelist.auto.exclusions", add_to_exclusions))
        already = edit_list(key, add, user=user, client_ip=client_ip, page="auto_whitelist")
    submit_command(Command.WHITELIST_AUTO_DELETE, {"domains": domains}, user=user,
                   client_ip=client_ip, page="auto_whitelist")
    return Moved(len(domains), already)


def _domain_entries(entries) -> set[str]:
    """The custom whitelist's `@domain` and `.domain` entries in the lists' one form."""
    return {form for form in map(entry_form, entries) if form[:1] in ("@", ".")}


def _whitelisted_by(domain: str, forms: set[str]) -> str | None:
    """The form of the custom whitelist entry (of `_domain_entries`) that whitelists every
    sender at `domain`: `@domain`, or `.domain` or `.parent` (core/scan/antispam/lists.py
    rule 1); None when none does."""
    labels = entry_form(domain).split(".")
    wanted = ["@" + ".".join(labels)] + ["." + ".".join(labels[i:]) for i in range(len(labels))]
    return next((form for form in wanted if form in forms), None)


# --- real-time blacklists ------------------------------------------------------------------

def rbl_rows(count: int) -> list[dict]:
    zones = list(settings()["rbl.zones"])
    zones += [{"enabled": False, "zone": "", "return_codes": []}] * (count - len(zones))
    return zones[:count]


def _filled(rows: list[dict]) -> list[int]:
    """Indexes of the rows that become zones: an empty row is left out; return codes or a
    ticked "Use this blacklist" without a zone name are not (the zone's rule then names
    that row's Zone field)."""
    return [i for i, r in enumerate(rows)
            if (r["zone"] or "").strip() or (r.get("codes") or "").strip() or r["enabled"]]


def save_rbl(rows: list[dict], action_changes: dict[str, Any], *, user: str,
             client_ip: str | None) -> dict:
    """`rows`: [{"enabled", "zone", "codes": text}] — rows left empty are left out (`_filled`).
    SettingError's `rbl.zones` errors are pointed at the row's field (`zone_error_fields`)."""
    zones = [{"enabled": bool(rows[i]["enabled"]), "zone": rows[i]["zone"].strip(),
              "return_codes": [code for _line, code in text_lines(rows[i]["codes"])]}
             for i in _filled(rows)]
    return save_settings({"rbl.zones": zones, **action_changes}, user=user,
                         client_ip=client_ip, page="rbl")


_ZONE_TWICE = re.compile(r"zone (\S+) is listed twice")
ZONE_REPEATS = "repeats the zone of Blacklist {row}"


def zone_error_fields(exc: SettingError, rows: list[dict]) -> list[tuple[str, str]]:
    """`exc`'s errors, each bad zone's as errors of the form fields of its row
    (`zone<row>_zone`, `zone<row>_codes` with its codes numbered by the lines typed), every
    bad field of a row at once; a zone in several rows marked once at each later row, naming
    the first (`ZONE_REPEATS`); other errors unchanged."""
    filled = _filled(rows)
    out, repeats = [], None
    for key, rule in exc.errors:
        cause = exc.causes.get(key) if key == "rbl.zones" else None
        twice = _ZONE_TWICE.match(rule) if key == "rbl.zones" else None
        if cause is not None and cause.entries \
                and all(0 < index <= len(filled) for index, _error in cause.entries):
            for index, error in cause.entries:
                out += _row_errors(filled[index - 1], error, rows)
            # a bad row stops the schema before its check of repeated zones, so that check
            # is made here, for the zone fields not already in error
            marked = {field for field, _rule in out}
            repeats = [pair for pair in _zone_repeats(rows, filled) if pair[0] not in marked]
            out += repeats
        elif twice and repeats is None:             # one error per repeat: all rows at once
            repeats = _zone_repeats(rows, filled)
            out += repeats or [(key, rule)]
        elif not twice or not repeats:
            out.append((key, rule))
    return out


def _row_errors(row: int, error, rows: list[dict]) -> list[tuple[str, str]]:
    out = []
    for part in error.field_errors or (error,):
        if part.field == "return_codes":
            out.append((f"zone{row}_codes", rule_by_line(part.inner, rows[row]["codes"])))
        elif part.field == "zone":
            out.append((f"zone{row}_zone", part.inner.rule))
        else:
            out.append((f"zone{row}_zone", part.rule))
    return out


def _zone_repeats(rows: list[dict], filled: list[int]) -> list[tuple[str, str]]:
    """The zone field of each row naming the zone of an earlier row, with that row's error
    (zones compare as the schema stores them: lower case, no root dot)."""
    first_row: dict[str, int] = {}
    out = []
    for row in filled:
        zone = rows[row]["zone"].strip().lower().rstrip(".")
        first = first_row.setdefault(zone, row)
        if zone and first != row:
            out.append((f"zone{row}_zone", ZONE_REPEATS.format(row=first + 1)))
    return out


# --- spam rules ----------------------------------------------------------------------------

def save_rule(index: int | None, shown: str, rule: dict, *, user: str,
              client_ip: str | None) -> bool:
    """Add `rule` (index None; `shown` unused) or replace rule `index`, shown as `shown`.
    Returns False when rule `index` already is `rule`: nothing is written then."""
    def edit(rules):
        if index is None:
            check_rule_name(rules, None, rule)
            rules.append(rule)
            return True
        check_rule_shown("rules.spam", rules, index, shown)
        check_rule_name(rules, index, rule)
        changed, rules[index] = rules[index] != rule, rule
        return changed
    return edit_list("rules.spam", edit, user=user, client_ip=client_ip, page="spam_rules")


def rule_at(index: int, shown: str) -> dict:
    """Spam rule `index` when it is still the rule the page showed (`shown`), for the
    confirmation of its Delete; raises RuleListChanged (a SettingError) when it is not."""
    rules = settings()["rules.spam"]
    check_rule_shown("rules.spam", rules, index, shown)
    return rules[index]


def delete_rule(index: int, shown: str, *, user: str, client_ip: str | None) -> dict:
    def edit(rules):
        check_rule_shown("rules.spam", rules, index, shown)
        return rules.pop(index)
    return edit_list("rules.spam", edit, user=user, client_ip=client_ip, page="spam_rules")
