"""A content or spam rule as the console edits it: its form and texts, its terms as one
comma-separated line.

Both rule pages (Filtering › Content Rules, Anti-spam › Spam Rules) read and write their
terms through here, so a rule opened and saved unchanged on either page is unchanged, and
both build the rule a form describes with `rule_from_form`. Their forms extend `RuleFields`
and their templates read the texts as `rule_texts` (RULE_TEXTS, each blueprint's context
processor), so a label, an option and the hints that name them are written once.
"""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from shared.settings import SettingError

__all__ = ["numbered_terms", "split_terms", "join_terms", "operator_errors", "rule_from_form",
           "MATCH_OPTIONS", "BODY_SCANNING_LABEL", "ENABLED_LABEL", "TERMS_LABEL",
           "NONE_OF_LABEL", "NAME_LABEL", "RULE_TEXTS", "RuleFields"]

# The guide's texts for a rule (chapter 5, "Custom spam rules" and "Blocking by custom content
# rules"), the same on both pages; commas, wildcards and escapes are in each page's hint.
MATCH_OPTIONS = {"all": "All of these terms", "any": "Any of these terms"}
BODY_SCANNING_LABEL = "Enable message body scanning for both Spam and Content Violation Rules"
ENABLED_LABEL = "Enable this custom filtering rule"
TERMS_LABEL = "Identify messages that contain"
NONE_OF_LABEL = "None of these terms"
NAME_LABEL = "Rule name (optional)"
# the texts the pages' templates write themselves (hints, the rules table, the delete
# confirmation): `rule_texts.match["any"]`, `rule_texts.terms`, `rule_texts.none_of`
RULE_TEXTS = {"match": MATCH_OPTIONS, "terms": TERMS_LABEL, "none_of": NONE_OF_LABEL}
# a terms line longer than this is refused by the form before it is split: 50 terms of at
# most 200 characters (the schema's limits, shared/settings_entries.py) with their commas
TERMS_LINE_MAX = 12_000


class RuleFields(FlaskForm):
    """The fields of a content or spam rule, the same on both pages; each page's form adds
    its own hidden fields and button. The schema checks the values when the rule is saved
    (the name's length too, in its words)."""
    enabled = BooleanField(ENABLED_LABEL, default=True)
    name = StringField(NAME_LABEL)
    # a new rule matches all of its terms: the guide reads a comma as AND and lists "All of
    # these terms" first (tester "guide", finding 6); a stored rule keeps its own match
    match = SelectField("Match", choices=[SelectChoice(value, text)
                                          for value, text in MATCH_OPTIONS.items()],
                        default="all")
    terms = StringField(TERMS_LABEL, validators=[Length(max=TERMS_LINE_MAX)])
    none_of = StringField(NONE_OF_LABEL, validators=[Length(max=TERMS_LINE_MAX)])

# The terms line (SPEC §3: the console edits terms as one comma-separated line; `*` and `?`
# are wildcards and `\` escapes them, as the core's matcher reads a term):
# - "\," is a comma in a term ("1\,000 dollars"); any other backslash is part of the term
#   ("100\*sure", "C:\temp");
# - backslashes right before a comma are read in pairs, each pair one backslash of the term,
#   an odd one left over making the comma part of the term: "a\\\,b" is the term a\,b;
# - spaces around a term are not part of it, so a term that ends in a backslash is shown
#   with a space before the comma that follows it ("C:\temp\ , next").
# `join_terms` writes any stored terms so that `split_terms` reads back exactly those terms
# (terms typed in the console have no spaces around them; a term set otherwise with spaces
# around it comes back without them).
_BACKSLASHES_BEFORE_COMMA = re.compile(r"(\\*),")
_TERMS_LINE = re.compile(r"(\\+)(,?)|(,)|[^\\,]+")     # backslashes (and a comma), a comma, text


def numbered_terms(line: str) -> list[tuple[int, str]]:
    """The terms of one comma-separated line (rules above), each with its place in the line
    from 1: empty places are skipped but counted, as the administrator sees them."""
    terms, current = [], []
    for part in _TERMS_LINE.finditer(line or ""):
        backslashes, comma, separator = part[1], part[2], part[3]
        if backslashes and comma:                # in pairs; an odd one keeps the comma
            current.append("\\" * (len(backslashes) // 2))
            if len(backslashes) % 2:
                current.append(",")
            else:
                separator = comma
        else:
            current.append("" if separator else part[0])
        if separator:
            terms.append("".join(current))
            current = []
    terms.append("".join(current))
    return [(place, t.strip()) for place, t in enumerate(terms, 1) if t.strip()]


def split_terms(line: str) -> list[str]:
    """The terms of one comma-separated line (rules above)."""
    return [term for _place, term in numbered_terms(line)]


def join_terms(terms) -> str:
    """The terms as one line that `split_terms` reads back as exactly these terms."""
    texts = [_BACKSLASHES_BEFORE_COMMA.sub(lambda m: "\\" * (2 * len(m[1]) + 1) + ",", t)
             for t in terms]
    return ", ".join(text + " " if text.endswith("\\") and place < len(texts) else text
                     for place, text in enumerate(texts, 1))


# The guide writes a content or spam rule as terms separated by AND, OR and NOT ("The
# operators that are allowed to separate terms are AND, OR, and NOT"); a Mailmoat rule has
# fields for them instead (Match all = AND, any = OR; the none-of terms = NOT), and inside
# a term the words are text: "invoice AND overdue NOT newsletter" looks for that phrase and
# never fires (tester "policy", B6). Terms ignore letter case, so the capitalised word is
# taken for the guide's operator and refused, and the word itself is typed in lower case.
_OPERATOR = re.compile(r"(?<!\S)(AND|OR|NOT)(?!\S)")
_NOT_OPERATORS = ("would match only that whole phrase: AND, OR and NOT are not operators "
                  "inside a term")
_LOWER_CASE = ("To match the capitalised word itself, type it in lower case (terms are not "
               "case-sensitive).")


def _uses_operators(term: str) -> bool:
    """An AND, OR or NOT beside another word ("OR" alone is a term: it separates nothing)."""
    return _OPERATOR.search(term) is not None and len(term.split()) > 1


def _as_fields(term: str) -> str:
    """What to type in the rule's fields for `term` written with the guide's operators."""
    pieces = _OPERATOR.split(term)
    operators = set(pieces[1::2])
    if {"AND", "OR"} <= operators:
        return "AND and OR cannot be mixed in one rule (the guide's rule too): make a rule " \
               "for each."
    wanted, unwanted = [], []
    for operator, text in zip(["AND", *pieces[1::2]], pieces[0::2]):
        if text.strip():
            (unwanted if operator == "NOT" else wanted).append(text.strip())
    advice = []
    if wanted:
        match = MATCH_OPTIONS["any" if "OR" in operators else "all"]
        advice.append(f'"{", ".join(wanted)}" as terms with Match "{match}"')
    if unwanted:
        advice.append(f'"{", ".join(unwanted)}" under "{NONE_OF_LABEL}"')
    return "Instead type " + " and ".join(advice) + "."


def operator_errors(terms: list[str], none_of: list[str], *,
                    stored: list[dict] = ()) -> list[tuple[str, str]]:
    """(field, message) for each term of a rule form written with the guide's AND, OR or
    NOT between words (above), saying what to type in the rule's fields instead; [] when
    there is none. The rule forms of both pages name their fields `terms` and `none_of`.
    A term the list's `stored` rules already have passes: a rule saved before this check
    ("DO NOT REPLY") must stay editable without retyping it (regress11 finding 8)."""
    kept = {term for rule in stored for term in (*rule.get("terms", ()),
                                                   *rule.get("none_of", ()))}
    terms = [term for term in terms if term not in kept]
    none_of = [term for term in none_of if term not in kept]
    out = []
    for term in terms:
        if _uses_operators(term):
            out.append(("terms", f'"{term}" {_NOT_OPERATORS}. {_as_fields(term)} '
                                 f"{_LOWER_CASE}"))
    for term in none_of:
        if _uses_operators(term):
            out.append(("none_of", f'"{term}" {_NOT_OPERATORS}. Separate the terms under '
                                   f'"none of" with commas: a message with any one of them '
                                   f"does not match. {_LOWER_CASE}"))
    return out


def rule_from_form(enabled: bool, name: str | None, match: str | None, terms: str | None,
                   none_of: str | None, *, stored: list[dict]) -> dict:
    """The rule a rule form describes (terms as comma-separated lines), for the list whose
    rules are `stored`. Raises SettingError naming the form's fields (`terms`, `none_of`)
    for a term written with the guide's operators (`operator_errors`); the schema checks the
    rest when the rule is saved."""
    rule: dict[str, Any] = {"enabled": bool(enabled), "match": match or "all",
                            "terms": split_terms(terms or ""),
                            "none_of": split_terms(none_of or "")}
    if (name or "").strip():
        rule["name"] = name.strip()
    errors = operator_errors(rule["terms"], rule["none_of"], stored=stored)
    if errors:
        raise SettingError(errors)
    return rule
