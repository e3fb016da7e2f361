"""The settings rules that span keys (SPEC §3): ports distinct, a forward action needs its
address, scores in order, passwords differ, a text to add while adding it is on, and the rest;
shared/settings.py declares each key and checks a value against its own kind, and asks this
module about the rules between them.

Rules:
- A rule is a function registered with `@_reads(key, ...)`, which names every key it reads: it
  is checked only when a change touches one of them (`CrossRule`), so a value an older release
  stored that a rule now refuses blocks no edit of another key (upgrade finding 1).
- A rule reads valid values only: `cross_errors` leaves out every rule reading a value that
  breaks its own kind, given or stored (review 13, B3).
- A rule yields `(key, rule)` and never raises for a value; it names the key being edited where
  it can, so the message points at the edit. A rule only reads: it stores nothing.
- Registration order is the order of the messages (`CROSS_RULES`).
- Every rule says what it holds in a sentence (`says=`, `CrossRule.says`): docs/settings.md
  (shared/settings_doc.py) prints it in the row of each key it reads and under "Rules that
  span keys", so the reference names every rule a value is held to besides its Type
  (settings20 B1). Rules that say the same sentence (the port pairs) are listed once.

Imports shared.settings for SCHEMA, which imports this module at its end (after SCHEMA), so the
two load in either order.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Iterable

from shared.settings import (PORT_KEYS, RULES_MAX_TOTAL, SCHEMA, SPAM_QUARANTINE_NOT_BUILT,
                             check_password)
from shared.wildcard import misread_escapes, without_marks

__all__ = ["CrossRule", "CROSS_RULES", "cross_errors", "matches_every_destination"]


@dataclass(frozen=True)
class CrossRule:
    """A rule that spans keys. `keys` are the settings it reads, and it is checked only when a
    change touches one of them (then it names the key being edited where it can): a value an
    older release stored must not block every other edit after an upgrade (upgrade finding
    1), as `filename.patterns` '?*' blocked every save on every page.

    `test(settings, plain, changed)` yields `(key, rule)` per breach; `plain` holds the new
    passwords in clear, `changed` the keys being changed. Reading a key not in `keys` is a
    bug (tests/unit/test_settings.py reads every rule's source for it); here it is logged
    once and the value read, since raising would fail every save the rule checks.

    `stored`, when the core does not use a stored value the rule refuses as stored, says
    what it does instead; it is added to the rule where stored values are listed
    (`cross_errors(stored=True)`: shared.settings.refused_values, the Status page).

    `says` is the rule in one sentence, as docs/settings.md prints it (every registered rule
    has one: `_reads` requires it).
    """
    keys: frozenset[str]
    test: Callable[[Mapping, dict, set], Iterable[tuple[str, str]]]
    stored: str = ""
    says: str = ""

    def __post_init__(self) -> None:
        unknown = self.keys - SCHEMA.keys()
        if unknown:
            raise ValueError(f"cross rule {self.test.__name__} reads unknown keys {unknown}")

    def reads_any(self, keys: set[str]) -> bool:
        return not self.keys.isdisjoint(keys)

    def check(self, settings: Mapping, plain: dict, changed: set) -> list[tuple[str, str]]:
        name = f"{self.test.__qualname__}({', '.join(sorted(self.keys))})"
        return list(self.test(_Declared(settings, self.keys, name), plain, changed))


class _Declared(Mapping):
    """The settings a cross rule declared it reads. Another key is a bug in the rule (edits of
    that key would not check it), logged once per rule and key (review 13, B4)."""

    def __init__(self, values: Mapping, keys: frozenset[str], rule: str):
        self._values, self._keys, self._rule = values, keys, rule

    def __getitem__(self, key):
        if key not in self._keys and (self._rule, key) not in _UNDECLARED_LOGGED:
            _UNDECLARED_LOGGED.add((self._rule, key))
            _log.error("cross rule %s reads %r without declaring it", self._rule, key)
        return self._values[key]

    def __iter__(self):
        return (key for key in self._values if key in self._keys)

    def __len__(self):
        return sum(1 for _key in self)


_log = logging.getLogger("mailmoat.settings")
_UNDECLARED_LOGGED: set[tuple[str, str]] = set()
_CROSS: list[CrossRule] = []


def _reads(*keys: str, says: str, stored: str = ""):
    """Register the decorated function as a cross rule reading `keys` (in file order: the
    order of the messages); `says` and `stored` are CrossRule.says and CrossRule.stored."""
    if not says.strip():
        raise ValueError(f"a cross rule reading {keys} must say what it holds (says=)")

    def register(test):
        _CROSS.append(CrossRule(frozenset(keys), test, stored, says))
        return test
    return register


def _typed_alone(changed: set, key: str, other: str) -> bool:
    """True when the change touches `key` and not `other`: a rule about `other` then names
    `key`, the key the administrator typed (`config set`), and says what `other` needs. A
    form saves both, and is told about `other`, its field."""
    return key in changed and other not in changed


_PORTS_DISTINCT = (", ".join(f"`{key}`" for key in PORT_KEYS[:-1])
                   + f" and `{PORT_KEYS[-1]}` are all different.")


def _ports_distinct(first: str, second: str) -> None:
    @_reads(first, second, says=_PORTS_DISTINCT)
    def ports_distinct(s, _plain, changed):
        if s.get(first) == s.get(second):
            # Name the key being changed, so the message points at the edit.
            if first in changed and second not in changed:
                yield first, f"already used by {second}"
            else:
                yield second, f"already used by {first}"


for _i, _first in enumerate(PORT_KEYS):
    for _second in PORT_KEYS[_i + 1:]:
        _ports_distinct(_first, _second)


@_reads("heuristic.drop_score", "heuristic.forward_score",
        says="`heuristic.forward_score`, when set, is lower than `heuristic.drop_score`.")
def _heuristic_scores(s, _plain, changed):
    drop, forward = s.get("heuristic.drop_score"), s.get("heuristic.forward_score")
    if drop is not None and forward is not None and forward >= drop:
        # Name the key being changed (settings finding 7); both (the Heuristic Engine
        # form): the forward score, which the rule has always been about.
        if "heuristic.drop_score" in changed and "heuristic.forward_score" not in changed:
            yield "heuristic.drop_score", "must be higher than heuristic.forward_score"
        else:
            yield "heuristic.forward_score", "must be lower than heuristic.drop_score"


@_reads("heuristic.forward_score", "heuristic.forward_to",
        says="`heuristic.forward_score`, when set, needs `heuristic.forward_to`.")
def _heuristic_forward_to(s, _plain, changed):
    if s.get("heuristic.forward_score") is not None and not s.get("heuristic.forward_to"):
        if _typed_alone(changed, "heuristic.forward_score", "heuristic.forward_to"):
            yield "heuristic.forward_score", ("needs heuristic.forward_to, where forwarded "
                                              "spam goes: set it first")
        else:
            yield "heuristic.forward_to", "required when heuristic.forward_score is set"


@_reads("rbl.zones", says="`rbl.zones` lists a zone once.")
def _rbl_zones_distinct(s, _plain, _changed):
    seen = set()
    for zone in s.get("rbl.zones") or []:
        if zone["zone"] in seen:
            yield "rbl.zones", f"zone {zone['zone']} is listed twice"
        seen.add(zone["zone"])


def _as_compared(entry: str) -> str:
    """A term, subject line or file-name pattern as the pipeline compares it
    (core/pipeline/rules.py `as_compared`): NFKC, without the marks it ignores, without
    invisible characters, its ends stripped."""
    return "".join(char for char in without_marks(unicodedata.normalize("NFKC", entry))
                   if unicodedata.category(char) != "Cf").strip()


_READS_AS_NOTHING = ("reads as nothing, so it never matches: accents, marks and invisible "
                    "characters are ignored in comparing")


def _reads_as_nothing(entry: str) -> bool:
    """True for an entry with something typed that is empty as compared (`_as_compared`):
    a lone accent or tatweel. A term of it is left out of the terms looked for, and a rule
    whose `match: all` holds it never matches (review19 r4 R4)."""
    return bool(entry.strip()) and not _as_compared(entry)


def _spelled(entry: str, quote: str = "'") -> str:
    """`entry` quoted, with its code points: a lone mark draws on the quote before it."""
    return f"{quote}{entry}{quote} ({' '.join(f'U+{ord(char):04X}' for char in entry[:8])}" \
           f"{' …' if len(entry) > 8 else ''})"


def _matches_everything(pattern: str, every_text_has: str = "") -> bool:
    """True for a `*`/`?` pattern (shared/wildcard.py `matches`) that matches every text of
    its kind, or every one but the shortest: a `*` and nothing but wildcards and characters
    that are no more than a text's shape (`every_text_has`: the dots of a file or domain
    name). The guide forbids * and *.* alone as file names (§6 "Blocking by file name");
    **, ?* and *.?* are the same in other words (policy finding C3). An escaped `\\*` is
    plain, and no wildcard. A `?` counts only beside a `*` in the same run of wildcards:
    `?.*` (a one-letter first label) or `[???.*]` (a three-digit first octet) name some
    texts, not all (review 16, C9). Read as the pipeline compares a subject line
    (core/pipeline/rules.py `as_compared`): NFKC, so a fullwidth ＊ is a *, without the
    marks the pipeline ignores (a `*` and an accent alone is `*`) and without invisible
    characters."""
    pattern = _as_compared(pattern)
    if "*" not in pattern or pattern.strip("*?" + every_text_has):
        return False
    runs = re.split("[" + re.escape(every_text_has) + "]", pattern) if every_text_has \
        else [pattern]
    return all("*" in run for run in runs if "?" in run)


def _not_everything(switch: str, values: str, every_text_has: str, would: str) -> None:
    # Checked when a change edits the list or turns its feature on: a match-everything
    # entry an older release stored while the feature was off must not take effect through
    # the switch alone (upgrade16 finding 1: `config set subject.enabled true` with a stored
    # subject line * dropped every message). Turning it off is always allowed.
    # Refused for the switch alone, the line names the key the administrator typed.
    @_reads(values, switch,
            says=f"An entry of `{values}` that alone would {would} (such as `*`) is refused "
                 f"when `{values}` is changed or `{switch}` is turned on.")
    def not_everything(s, _plain, changed):
        if values not in changed and not (switch in changed and s.get(switch)):
            return
        for pattern in s.get(values) or []:
            if _matches_everything(pattern, every_text_has):
                if values in changed:
                    yield values, f"'{pattern.strip()}' alone would {would}"
                else:
                    yield switch, (f"{values} holds '{pattern.strip()}', which alone would "
                                   f"{would}: correct {values} first")


_not_everything("filename.enabled", "filename.patterns", ".", "delete every attachment")
# A subject line matches the whole subject: * blocks all mail (settings finding 5).
_not_everything("subject.enabled", "subject.lines", "", "block every message")


def _not_nothing(key: str) -> None:
    # An entry of marks alone (a lone accent, a tatweel) is compared as "" and never
    # matches, a rule's `match: all` holding it never matches either, and nothing said so
    # (review19 r4 R4). Checked when the list is edited; stored, it harms nothing more.
    @_reads(key, says=f"An entry of `{key}` of accents, marks or invisible characters alone "
                      "is refused: it reads as nothing and never matches.")
    def not_nothing(s, _plain, _changed):
        for entry in s.get(key) or []:
            if isinstance(entry, str) and _reads_as_nothing(entry):
                yield key, f"{_spelled(entry)} {_READS_AS_NOTHING}"


_not_nothing("subject.lines")
_not_nothing("filename.patterns")


def matches_every_destination(match: str) -> bool:
    """True for a routing.local `match` that matches every domain, or every IPv4 address
    literal ([*], stored so for *.*.*.* typed as addresses): refused below, and, stored by an
    older release, left out of the core's relay check (core/smtp/policy.py)."""
    literal = match.startswith("[") and match.endswith("]")
    return _matches_everything(match[1:-1] if literal else match, ".")


@_reads("routing.local",
        says="A `routing.local` match of every domain (`*`) or every IPv4 address literal "
             "(`[*]`) is refused: it would turn anti-relay off.",
        stored="stored by an older release, it is left out of the relay check: mail to a "
               "destination only it makes local is deferred (451 4.7.1) for clients not in "
               "relay.allowed until it is fixed")
def _routing_not_everything(s, _plain, _changed):
    # A local destination is exempt from the relay checks (core/smtp/policy.py): an entry
    # matching every domain, or every IPv4 address literal, would make the gateway an open
    # relay (settings finding 4).
    for entry in s.get("routing.local") or []:
        match = entry["match"]
        if matches_every_destination(match):
            what = ("mail to every IPv4 address literal (user@[192.0.2.1])"
                    if match.startswith("[") else "mail to every domain")
            yield "routing.local", (f"'{match}' would make {what} local, which turns "
                                    "anti-relay off (an open relay)")


def _forward_target(action_key: str, target_key: str) -> None:
    @_reads(action_key, target_key, says=f"`{action_key}` forward needs `{target_key}`.")
    def forward_target(s, _plain, changed):
        if s.get(action_key) == "forward" and not s.get(target_key):
            if _typed_alone(changed, action_key, target_key):
                yield action_key, f"forward needs {target_key}: set it first"
            else:
                yield target_key, f"required when {action_key} is forward"


for _prefix in ("subject", "rbl", "blacklist", "encrypted"):
    _forward_target(f"{_prefix}.action", f"{_prefix}.forward_to")
_forward_target("rules.content_action", "rules.content_forward_to")
for _level in ("spam", "suspected"):
    _forward_target(f"premium.{_level}.disposition", f"premium.{_level}.forward_to")


# Keys whose value `quarantine` sends mail to the spam quarantine, which no change may ask for
# until it is built (shared.settings.SPAM_QUARANTINE_NOT_BUILT): the choices that withhold it
# (settings_types.Choice.withheld), which their rule and docs/settings.md leave out.
_TO_SPAM_QUARANTINE = tuple(key for key, setting in SCHEMA.items()
                            if "quarantine" in getattr(setting.kind, "withheld", ()))


# What the core does with a stored quarantine meanwhile (core/pipeline/verdict.py INSTEAD):
# content rules hold the mail; premium antispam, not built, scores no mail at all.
_STORED_QUARANTINE = {"rules.content_action": "stored by an older release, matching mail is "
                                              "held in the hold queue instead"}


def _spam_quarantine_not_built(key: str) -> None:
    @_reads(key, says=f"`{key}` quarantine is refused until the spam quarantine is built "
                      "(one an older release stored is listed on the Status page).",
            stored=_STORED_QUARANTINE.get(key, ""))
    def spam_quarantine_not_built(s, _plain, _changed):
        if s.get(key) == "quarantine":
            yield key, (f"quarantine is not available yet: {SPAM_QUARANTINE_NOT_BUILT}; "
                        "choose another action")


for _key in _TO_SPAM_QUARANTINE:
    _spam_quarantine_not_built(_key)


@_reads("rules.spam", "rules.content",
        says=f"`rules.spam` and `rules.content` together hold at most {RULES_MAX_TOTAL} rules.")
def _rules_total(s, _plain, changed):
    counts = {"spam": len(s.get("rules.spam") or []),
              "content": len(s.get("rules.content") or [])}
    if sum(counts.values()) > RULES_MAX_TOTAL:
        # Name the list being changed, so the message points at the edit (a spam rule added
        # on the Spam Rules page is refused there as rules.spam), and count both lists,
        # the one being changed last: "(60 content rules + 41 spam rules)".
        edited = "spam" if "rules.spam" in changed and "rules.content" not in changed \
            else "content"
        other = "content" if edited == "spam" else "spam"
        both = " + ".join(f"{counts[kind]} {kind} rule{'' if counts[kind] == 1 else 's'}"
                          for kind in (other, edited))
        yield (f"rules.{edited}",
               f"spam and content rules together must be at most {RULES_MAX_TOTAL} ({both})")


def _no_misread_escapes(key: str) -> None:
    # A `\\` escapes * and ? only (guide §5, §6): `100\\% pure` looks for the backslash and
    # never finds "100% pure" (guide45 minor note). A rule here, not in the term's kind: a
    # term stored so before stays valid where it is read, and is matched as written; it is
    # listed among the refused stored values and blocks no edit of another key.
    @_reads(key, says=f"In a term of `{key}`, \\ escapes only * and ?: `100\\%` is refused "
                      "(type `100%`).")
    def no_misread_escapes(s, _plain, _changed):
        for number, rule in enumerate(s.get(key) or [], 1):
            bad = [(label, term, pairs) for label, field in (("term", "terms"),
                                                             ("none-of term", "none_of"))
                   for term in rule.get(field) or []
                   if (pairs := misread_escapes(term))]
            if not bad:
                continue
            name = f' ("{rule["name"]}")' if rule.get("name") else ""
            terms = ", ".join(f'{label} "{term}"' for label, term, _pairs in bad)
            pairs = list(dict.fromkeys(pair for _l, _t, found in bad for pair in found))
            what = (f"{pairs[0]} looks for a backslash and {pairs[0][1]}; type {pairs[0][1]} "
                    "alone") if len(pairs) == 1 else (
                f"{', '.join(pairs[:-1])} and {pairs[-1]} look for a backslash before the "
                "mark; type the marks alone")
            yield key, (f"rule {number}{name} {terms}: \\ escapes only * and ?, so {what} "
                        "(or ? where the text itself has a backslash)")


for _key in ("rules.spam", "rules.content"):
    _no_misread_escapes(_key)


def _no_empty_terms(key: str) -> None:
    # A term of marks alone: `_not_nothing`'s refusal, for a rule's terms.
    @_reads(key, says=f"A term of `{key}` of accents, marks or invisible characters alone is "
                      "refused: it reads as nothing.")
    def no_empty_terms(s, _plain, _changed):
        for number, rule in enumerate(s.get(key) or [], 1):
            name = f' ("{rule["name"]}")' if rule.get("name") else ""
            for label, field in (("term", "terms"), ("none-of term", "none_of")):
                for term in rule.get(field) or []:
                    if _reads_as_nothing(term):
                        yield key, (f"rule {number}{name} {label} "
                                    f"{_spelled(term, chr(34))} {_READS_AS_NOTHING}")


for _key in ("rules.spam", "rules.content"):
    _no_empty_terms(_key)


def _text_when_added(switch: str, text: str) -> None:
    # "Add text" ticked with no text adds nothing, and the page says it is added (guide45
    # minor note): refused like an empty notification text.
    @_reads(switch, text, says=f"`{switch}` on needs `{text}` not empty.")
    def text_when_added(s, _plain, changed):
        if s.get(switch) and not (s.get(text) or "").strip():
            if _typed_alone(changed, switch, text):
                yield switch, f"needs {text}, the text added, which is empty: set it first"
            else:
                yield text, f"must not be empty while {switch} is on: the text added is this one"


_text_when_added("av.deleted_text.enabled", "av.deleted_text")
_text_when_added("filename.deleted_text.enabled", "filename.deleted_text")


@_reads("admin.report_only.enabled", "admin.report_only.password",
        says="`admin.report_only.enabled` on needs `admin.report_only.password` set.")
def _report_only_needs_password(s, _plain, changed):
    if s.get("admin.report_only.enabled") and not s.get("admin.report_only.password"):
        if "admin.report_only.password" in changed and \
                "admin.report_only.enabled" not in changed:     # settings finding 7
            yield "admin.report_only.password", ("must be set while admin.report_only.enabled "
                                                 "is on: turn the account off first")
        else:
            yield "admin.report_only.enabled", "set admin.report_only.password first"


@_reads("admin.password", "admin.report_only.password",
        says="`admin.password` and `admin.report_only.password` differ.")
def _passwords_differ(s, plain, _changed):
    report_plain = plain.get("admin.report_only.password")
    admin_plain = plain.get("admin.password")
    if report_plain is not None:
        if admin_plain is not None:
            same = admin_plain == report_plain
        else:
            same = check_password(s.get("admin.password"), report_plain)
        if same:
            yield "admin.report_only.password", "must differ from admin.password"
    elif admin_plain is not None and check_password(s.get("admin.report_only.password"),
                                                    admin_plain):
        yield "admin.password", "must differ from admin.report_only.password"


@_reads("delivery.retry_initial_seconds", "delivery.retry_max_seconds",
        says="`delivery.retry_max_seconds` is not lower than `delivery.retry_initial_seconds`.")
def _retry_interval(s, _plain, changed):
    if s.get("delivery.retry_max_seconds", 0) < s.get("delivery.retry_initial_seconds", 0):
        if _typed_alone(changed, "delivery.retry_initial_seconds", "delivery.retry_max_seconds"):
            yield ("delivery.retry_initial_seconds",
                   "must not be higher than delivery.retry_max_seconds")
        else:
            yield ("delivery.retry_max_seconds",
                   "must not be lower than delivery.retry_initial_seconds")


@_reads("forwarding.enabled", "forwarding.host",
        says="`forwarding.enabled` on needs `forwarding.host`.")
def _forwarding_host(s, _plain, changed):
    if s.get("forwarding.enabled") and not s.get("forwarding.host"):
        if _typed_alone(changed, "forwarding.enabled", "forwarding.host"):
            yield "forwarding.enabled", "needs forwarding.host: set it first"
        else:
            yield "forwarding.host", "required when forwarding.enabled is true"


@_reads("scan.mode", "scan.include",
        says="`scan.mode` include needs `scan.include` to list at least one extension.")
def _scan_lists(s, _plain, changed):
    if s.get("scan.mode") == "include" and not s.get("scan.include"):
        if _typed_alone(changed, "scan.mode", "scan.include"):
            yield "scan.mode", ("include needs scan.include to list at least one extension: "
                                "set it first")
        else:
            yield "scan.include", "must list at least one extension when scan.mode is include"


CROSS_RULES: tuple[CrossRule, ...] = tuple(_CROSS)


def cross_errors(rules: Iterable[CrossRule], values: Mapping, plain: dict, changed: set,
                 unjudged: set, *, stored: bool = False) -> list[tuple[str, str]]:
    """The breaches of `rules`, leaving out every rule that reads a key of `unjudged`
    (keys whose value breaks its own kind: the rules expect valid values). `stored`:
    `values` are the stored ones, and each rule with a CrossRule.stored text says it."""
    return [(key, f"{rule}; {cross.stored}" if stored and cross.stored else rule)
            for cross in rules if not cross.reads_any(unjudged)
            for key, rule in cross.check(values, plain, changed)]
