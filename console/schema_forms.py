"""WTForms forms generated from the settings schema (ARCHITECTURE invariant 5).

One field per key, chosen by the key's kind; the schema (`shared.settings`) alone decides
whether a value is valid and gives the message shown next to the field. Forms only check
shape (CSRF, a number is digits) and hand the schema what the user typed.

Kind → field:
- Bool → checkbox; Choice → select; Timezone → select of IANA names
- Int with at most 10 values (the heuristic sensitivity 1..5) → select
- other Int, Nullable(Int) → text box (ASCII digits and a sign; anything else, "٣" or "５"
  too, is passed on so the schema's "must be a whole number written with the digits 0-9" is
  the message)
- Str (multiline) → text area; other text kinds → text box; Nullable(...) empty → null
- ListOf(simple kind) → text area, one entry per line (blank lines skipped); the schema's
  message about bad entries is numbered by the lines the administrator typed (`attach_errors`)
- ListOf(Choice) → multiple select
- HostPort, Nullable(HostPort) → Host and Port boxes (empty host → null, empty port → the
  default port), and a box for each of the kind's optional `extra_fields` (left out of the
  value when empty; typed with no host, refused rather than dropped); a box missing from the
  posted body keeps its stored part of the value
Anything else (rules, RBL zones, routing entries) needs a page-specific form.

Every form carries, hidden (`SHOWN_FIELD`), a digest of each value as the page showed it.
A key changed elsewhere since (another tab, another administrator, a move from the
auto-generated whitelist, `mailmoat config set`) is left as it is now when this page did not
change it, and refused when it did: saving the whole page must not put back what the page
showed over a newer value (`form_values`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

from flask_wtf import FlaskForm
from wtforms import (BooleanField, HiddenField, SelectField, SelectMultipleField, StringField,
                     TextAreaField)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from console.context import settings
from shared.settings import NOT_BUILT_FEATURES, SCHEMA, Setting, SettingError
from shared.settings_addresses import HostPort
from shared.settings_types import (
    Bool, Choice, Int, Kind, ListOf, Nullable, RuleError, Str, Timezone, Weekday, entries_rule,
    integer_from_text, zone_names,
)

__all__ = ["field_name", "settings_form", "with_option_labels", "form_values", "form_data",
           "attach_errors", "UnsupportedKind", "supports", "SettingField", "text_lines",
           "rule_by_line", "SHOWN_FIELD", "CHANGED_MEANWHILE"]

SHOWN_FIELD = "settings_shown"
MAX_SELECT_NUMBERS = 10     # an Int with at most this many values is a select
MAX_EXTRA_FIELD_CHARS = 320  # a HostPort's extra text box: the schema checks the rest
CHANGED_MEANWHILE = ("was changed elsewhere after this page was loaded; nothing was saved. "
                     "Reload the page to see the current value, then make your change again")


def _choices(pairs):
    """WTForms' options from (value, label) pairs: 3.3 deprecates the pairs themselves (3.4
    refuses them)."""
    return [SelectChoice(value, label) for value, label in pairs]


class UnsupportedKind(TypeError):
    """The key's kind has no generic field; the page must build its own."""


def field_name(key: str, part: str | None = None) -> str:
    name = key.replace(".", "__")
    return f"{name}___{part}" if part else name


def _inner(kind: Kind) -> tuple[Kind, bool]:
    if isinstance(kind, Nullable):
        return kind.inner, True
    return kind, False


def supports(key: str) -> bool:
    try:
        _fields_for(SCHEMA[key], {})
        return True
    except UnsupportedKind:
        return False


def _label(setting: Setting, labels: dict[str, str]) -> str:
    """The page's label for the key, else the key's help text up to the end of its first
    sentence, clause or parenthesis: the whole help, cut at a " (" three sentences on, was
    the Setup tab's bold label of smtp.tls.outbound (firstday20 C1). The rest is the hint
    under the field (`_hint`)."""
    return labels.get(setting.key) or _first_clause(setting.help)


def _first_clause(help_text: str) -> str:
    return help_text.split(". ")[0].rstrip(".").split(" (")[0].split(";")[0]


def _hint(setting: Setting) -> str | None:
    """The key's whole help, shown under its field, when it says more than its first
    clause: what a label cannot hold (smtp.tls.outbound's "with required, bounces to your
    own users wait", lost from the Setup page when ac821cf shortened its label: review20c
    R2). A feature's "not built yet" sentence is left out: the page's notice says it once."""
    text = setting.help
    for sentence in NOT_BUILT_FEATURES.values():
        text = text.removesuffix(f" {sentence}.")
    if _first_clause(text) == text.rstrip("."):
        return None
    return _console_words(text)


def _console_words(help_text: str) -> str:
    """The help in the console's terms, not the command line's: a null value is an empty
    box, and a name in backticks is plain text on a page (review20f C1)."""
    return help_text.replace("(null = ", "(empty = ").replace("`", "")


# Choice values that are names or acronyms, written as their owners write them ("TLS", not
# "Tls"); every other value is shown as a word with a capital ("on_error" -> "On error").
_NAMED_CHOICES = {
    "tcp": "TCP", "tls": "TLS", "udp": "UDP", "rfc5424": "RFC 5424", "cef": "CEF",
    "json": "JSON", "html": "HTML", "clamd": "clamd", "builtin": "Built-in",
    "starttls": "STARTTLS", "ldaps": "LDAPS", "openldap": "OpenLDAP", "sunone": "Sun ONE",
    "active_directory": "Active Directory",
}


def _choice_label(value: str) -> str:
    return _NAMED_CHOICES.get(value) or value.replace("_", " ").capitalize()


@lru_cache(maxsize=1)
def _timezones() -> tuple[str, ...]:
    return zone_names()             # what `Timezone` takes: no localtime, no Factory


def _fields_for(setting: Setting, labels: dict[str, str]) -> dict[str, Any]:
    kind, nullable = _inner(setting.kind)
    label = _label(setting, labels)
    common = {"description": setting.help}
    name = field_name(setting.key)
    if setting.secret == "hashed":
        raise UnsupportedKind(setting.key)
    if isinstance(kind, Bool):
        return {name: BooleanField(label, **common)}
    if isinstance(kind, Timezone):
        return {name: SelectField(label, choices=_choices((z, z) for z in _timezones()),
                                  validate_choice=False, **common)}
    if isinstance(kind, (Choice, Weekday)):
        choices = kind.choices if isinstance(kind, Choice) else Weekday.DAYS
        return {name: SelectField(label, choices=_choices((c, _choice_label(c)) for c in choices),
                                  validate_choice=False, **common)}
    if isinstance(kind, Int) and not nullable and kind.max - kind.min < MAX_SELECT_NUMBERS:
        # a level such as the heuristic sensitivity 1..5: chosen, as the guide has it
        return {name: SelectField(label, choices=_choices(
            (str(n), str(n)) for n in range(kind.min, kind.max + 1)), validate_choice=False,
            **common)}
    if isinstance(kind, Int):
        return {name: StringField(label, render_kw={"inputmode": "numeric", "size": 8},
                                  **common)}
    if isinstance(kind, HostPort):
        return {field_name(setting.key, "host"): StringField(f"{label}: host", **common),
                field_name(setting.key, "port"): StringField(
                    "Port", render_kw={"inputmode": "numeric", "size": 6},
                    description=f"Port (default {kind.default_port})."),
                **{field_name(setting.key, extra): StringField(
                    extra_label, validators=[Length(max=MAX_EXTRA_FIELD_CHARS)])
                   for extra, extra_label in kind.extra_fields}}
    if isinstance(kind, ListOf):
        item = kind.item
        if isinstance(item, (Choice, Weekday)):
            choices = item.choices if isinstance(item, Choice) else Weekday.DAYS
            return {name: SelectMultipleField(label, choices=_choices((c, c) for c in choices),
                                              validate_choice=False, **common)}
        if type(item).__name__ in ("RoutingEntry", "Rule", "RblZone"):
            raise UnsupportedKind(setting.key)
        return {name: TextAreaField(f"{label} (one per line)", render_kw={"rows": 5},
                                    **common)}
    if isinstance(kind, Str) and kind.multiline:
        return {name: TextAreaField(label, render_kw={"rows": 6}, **common)}
    if type(kind).__name__ in ("Rule", "RblZone", "RoutingEntry"):
        raise UnsupportedKind(setting.key)
    return {name: StringField(label, **common)}


@dataclass(frozen=True)
class SettingField:
    """What a template needs to draw one setting: its key, its form field names and the
    hint under them (`_hint`)."""
    key: str
    names: tuple[str, ...]
    restart: bool
    hint: str | None = None


def settings_form(keys: Iterable[str], labels: dict[str, str] | None = None,
                  name: str = "SettingsForm", base: type = FlaskForm) -> type:
    """A FlaskForm class with one field (or a host/port pair) per key, in the given order."""
    labels = labels or {}
    attrs: dict[str, Any] = {}
    layout: list[SettingField] = []
    for key in keys:
        fields = _fields_for(SCHEMA[key], labels)
        attrs.update(fields)
        layout.append(SettingField(key, tuple(fields), SCHEMA[key].restart,
                                   _hint(SCHEMA[key])))
    attrs["setting_fields"] = tuple(layout)
    attrs[SHOWN_FIELD] = HiddenField()
    return type(name, (base,), attrs)


def with_option_labels(form_class: type, option_labels: dict[str, dict[str, str]]) -> type:
    """`form_class` whose selects of `option_labels`' keys show those texts ({key: {value:
    text}}) in place of the value as a word; the values, and everything else about the
    fields, stay as the schema made them."""
    for key, texts in option_labels.items():
        name = field_name(key)
        if name in form_class.__dict__:
            unbound = form_class.__dict__[name]
            choices = [SelectChoice(value, texts[value]) for value in SCHEMA[key].kind.choices]
            setattr(form_class, name,
                    SelectField(*unbound.args, **{**unbound.kwargs, "choices": choices}))
    return form_class


# --- values ↔ form data ------------------------------------------------------------------

def form_data(keys: Iterable[str], values: dict[str, Any]) -> dict[str, Any]:
    """Form `data=` for the current settings."""
    keys = list(keys)
    # not of secrets: a digest in the page would be a password hash to guess against
    data: dict[str, Any] = {SHOWN_FIELD: json.dumps(
        {k: _digest(values[k]) for k in keys if SCHEMA[k].secret is None})}
    for key in keys:
        kind, _nullable = _inner(SCHEMA[key].kind)
        value = values[key]
        if isinstance(kind, HostPort):
            data[field_name(key, "host")] = value["host"] if value else ""
            data[field_name(key, "port")] = str(value["port"]) if value else ""
            for extra, _label in kind.extra_fields:
                data[field_name(key, extra)] = (value or {}).get(extra, "")
        elif isinstance(kind, ListOf) and not isinstance(kind.item, (Choice, Weekday)):
            data[field_name(key)] = "\n".join(str(v) for v in value)
        elif isinstance(kind, (Int, Str)) or (value is None):
            data[field_name(key)] = "" if value is None else str(value)
        else:
            data[field_name(key)] = value
    return data


def _host_port(form, key: str, kind: HostPort, nullable: bool) -> dict[str, Any] | None:
    """The posted HostPort (its host is in the body). A port or extra box left out of the
    body keeps its stored value, as a left-out key does (`_submitted`); a box that is there
    but empty is a value: the default port, no extra (console18 R4)."""
    stored = settings()[key] or {}
    host = (form[field_name(key, "host")].data or "").strip()
    port_name = field_name(key, "port")
    if _left_out(form, [port_name]):
        port = stored.get("port", kind.default_port)
    else:
        port = (form[port_name].data or "").strip()
        port = _number(port) if port else kind.default_port
    typed = {extra: text for extra, _label in kind.extra_fields
             if not _left_out(form, [field_name(key, extra)])
             and (text := (form[field_name(key, extra)].data or "").strip())}
    extras = {extra: stored[extra] for extra, _label in kind.extra_fields
              if _left_out(form, [field_name(key, extra)]) and stored.get(extra)} | typed
    if not host and nullable:
        if typed:                       # typed, and would be lost without a host
            raise SettingError([(key, f"{' and '.join(typed)} needs the host: type the "
                                      f"host, or clear the {' and '.join(typed)}")])
        return None
    return {"host": host, "port": port, **extras}


def _number(text: str) -> Any:
    number = integer_from_text(text)            # ASCII digits only: int() also reads "٣"
    return text.strip() if number is None else number


def text_lines(text: str | None) -> list[tuple[int, str]]:
    """The entries of a one-entry-per-line text area, each with the line it was typed on
    (from 1): blank lines are skipped but counted, as the administrator sees them."""
    return [(number, line.strip())
            for number, line in enumerate((text or "").splitlines(), 1) if line.strip()]


def rule_by_line(error: RuleError, text: str | None) -> str:
    """The rule of a list typed as `text` (`text_lines`), its bad entries numbered by line."""
    lines = [number for number, _entry in text_lines(text)]
    if not error.entries or error.entries[-1][0] > len(lines):     # not a list from `text`
        return error.rule
    return entries_rule([(lines[index - 1], entry.rule) for index, entry in error.entries],
                        unit="line")


def _is_text_area_list(key: str) -> bool:
    kind, _nullable = _inner(SCHEMA[key].kind)
    return isinstance(kind, ListOf) and not isinstance(kind.item, (Choice, Weekday))


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _as_shown(form, values: dict[str, Any]) -> dict[str, Any]:
    """`values` without the keys changed elsewhere since the page was shown that this page
    did not change; SettingError naming the ones it did change (module docstring)."""
    try:
        shown = json.loads(form[SHOWN_FIELD].data or "{}") if SHOWN_FIELD in form else {}
    except ValueError:
        shown = {}
    if not isinstance(shown, dict) or not shown:
        return values                   # a form from before the digests: saved as it was
    current = settings()
    out, changed_meanwhile = {}, []
    for key, value in values.items():
        was = shown.get(key)
        if was is None or was == _digest(current[key]):
            out[key] = value
        elif was != _digest(_checked(key, value)):
            changed_meanwhile.append((key, CHANGED_MEANWHILE))
    if changed_meanwhile:
        raise SettingError(changed_meanwhile)
    return out


def _checked(key: str, value: Any) -> Any:
    """The value as it would be stored (normalised), or as typed when it is not valid."""
    try:
        return SCHEMA[key].kind.check(value)
    except RuleError:
        return value


def form_values(form, keys: Iterable[str]) -> dict[str, Any]:
    """The values the user submitted, as the schema expects them (not yet validated), less
    those changed elsewhere since the page was shown (`_as_shown`)."""
    return _as_shown(form, _submitted(form, keys))


def _left_out(form, names: list[str]) -> bool:
    """True when none of the fields `names` is in the posted body at all (not even empty).
    A browser sends every text box, text area and select, empty or not; only a checkbox
    left unticked and a multiple select with nothing chosen are absent by design."""
    return all(form[name].raw_data == [] for name in names)


def _submitted(form, keys: Iterable[str]) -> dict[str, Any]:
    """The submitted values of `keys`, as the schema expects them. A key whose text box,
    text area or select is not in the posted body is left out (not changed), as the digests
    leave out a key changed elsewhere: a scripted or broken post that leaves out the
    default route's host must not clear `routing.default` (console18 B3). An empty box is
    a deliberate value (an empty host is the only way to null)."""
    out: dict[str, Any] = {}
    for key in keys:
        kind, nullable = _inner(SCHEMA[key].kind)
        if isinstance(kind, HostPort):
            if not _left_out(form, [field_name(key, "host")]):   # the host decides null
                out[key] = _host_port(form, key, kind, nullable)
            continue
        is_multiple = isinstance(kind, ListOf) and isinstance(kind.item, (Choice, Weekday))
        if not isinstance(kind, Bool) and not is_multiple and _left_out(form, [field_name(key)]):
            continue
        data = form[field_name(key)].data
        if isinstance(kind, Bool):
            out[key] = bool(data)
        elif isinstance(kind, Int):
            text = (data or "").strip()
            out[key] = None if (nullable and not text) else _number(text)
        elif isinstance(kind, ListOf):
            if isinstance(kind.item, (Choice, Weekday)):
                out[key] = list(data or [])
            else:
                out[key] = [entry for _line, entry in text_lines(data)]
        elif isinstance(kind, Str) and kind.multiline:
            out[key] = (data or "").replace("\r\n", "\n")
        else:
            text = (data or "").strip()
            out[key] = None if (nullable and not text) else text
    return out


def _by_line(form, exc: SettingError) -> list[tuple[str, str]]:
    """`exc.errors`, the bad entries of a list typed in this form's text area numbered by
    the lines the administrator typed them on (the schema numbers list positions)."""
    out = []
    for key, rule in exc.errors:
        cause, name = exc.causes.get(key), field_name(key)
        if cause is not None and key in SCHEMA and _is_text_area_list(key) and name in form:
            rule = rule_by_line(cause, form[name].data)
        out.append((key, rule))
    return out


def _placed(form, exc: SettingError) -> list[tuple[str, str, str | None]]:
    """`exc.errors` as (key, rule, field name or None): the message of each field of an
    object drawn as several boxes (a HostPort's host, port and extra fields) goes to the box
    of the field its RuleError names (`field_errors`), each by itself when several break
    their rules (review20e R1: only a message starting "port" left Host, so a bad
    av.central_quarantine mailbox was marked on Host, and a bad port and mailbox together
    went beside Port as one text)."""
    out = []
    for key, rule in _by_line(form, exc):
        kind = _inner(SCHEMA[key].kind)[0] if key in SCHEMA else None
        parts = exc.causes[key].field_errors \
            if isinstance(kind, HostPort) and key in exc.causes else ()
        if parts and all(field_name(key, part.field) in form for part in parts):
            out.extend((key, part.rule, field_name(key, part.field)) for part in parts)
        else:
            out.append((key, rule, None))
    return out


def attach_errors(form, errors: SettingError | list[tuple[str, str]],
                  fields: dict[str, str] | None = None) -> list[str]:
    """Put each schema error next to its field; returns the messages that have no field.

    Given the SettingError itself, a text-area list's message counts the lines the
    administrator typed, and each field of an object drawn as several boxes is marked by
    its own message (`_placed`). `fields` maps a key to a field name when the page names its
    fields otherwise.
    """
    placed = _placed(form, errors) if isinstance(errors, SettingError) \
        else [(key, rule, None) for key, rule in errors]
    leftover = []
    fields = fields or {}
    for key, rule, name in placed:
        name = name or fields.get(key)
        if name is None and key not in SCHEMA and key in form:
            name = key
        if name is None and key in SCHEMA:
            # a key drawn as Host and Port whose message names no field goes beside Host
            for candidate in (field_name(key), field_name(key, "host")):
                if candidate in form:
                    name = candidate
                    break
        if name is not None and name in form:
            form[name].errors = [*(form[name].errors or ()), _labelled(form, rule)]
        else:
            leftover.append(f"{key}: {rule}")
    return leftover


_KEY_IN_TEXT = re.compile(r"\b[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+\b")


def _labelled(form, rule: str) -> str:
    """A rule beside its field names another key of the same page by that field's label, as
    the administrator reads the page ("must be lower than “Drop messages …”"), not by the key
    the command line uses (tester25a B5)."""
    def label(match):
        key = match.group()
        name = field_name(key) if key in SCHEMA else None
        if name is None or name not in form:
            return key
        return f"“{form[name].label.text}”"
    return _KEY_IN_TEXT.sub(label, rule)
