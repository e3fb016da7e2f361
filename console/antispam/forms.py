"""Forms of the Anti-spam Policy pages. Settings forms are generated from the schema; the RBL
zones, spam rules and auto-whitelist management have their own forms (shape only — meaning is
checked by the settings schema)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (BooleanField, HiddenField, SelectMultipleField, StringField, SubmitField,
                     TextAreaField)
from wtforms.validators import Optional, Regexp

from console.rule_terms import BODY_SCANNING_LABEL, RuleFields
from console.schema_forms import settings_form, with_option_labels
from shared.settings import SCHEMA

__all__ = ["TABS", "PAGE_KEYS", "SETTINGS_FORMS", "LABELS", "RblForm", "SpamRuleForm",
           "DeleteRuleForm", "AutoListForm", "RBL_ZONE_ROWS"]

# (tab id, title, endpoint) in the guide's order
TABS = (
    ("whitelist", "Whitelist", "antispam.whitelist"),
    ("auto_whitelist", "Auto-generated Whitelist", "antispam.auto_whitelist"),
    ("rbl", "Real-time Blacklists", "antispam.rbl"),
    ("blacklist", "Custom Blacklist", "antispam.blacklist"),
    ("heuristic", "Heuristic Engine", "antispam.heuristic"),
    ("spam_rules", "Spam Rules", "antispam.spam_rules"),
    ("premium", "Premium AntiSpam", "antispam.premium"),
)
RBL_ZONE_ROWS = 3
ZONE_ENABLED_LABEL = "Use real-time blacklist {n}"     # row n's check box (from 1)
ZONE_LABEL = "Real-time blacklist {n} domain name"    # row n's zone

LABELS = {
    "whitelist.custom.enabled": "Bypass heuristic and blacklist detection for the following "
                                "domains or email addresses",
    "whitelist.custom": "Custom whitelist (@domain, .domain wildcard or address)",
    "whitelist.auto.enabled": "Enable whitelist generator",
    "whitelist.auto.exclusions": "Exclusion list (domains the generator does not track, each "
                                 "with its subdomains; a leading period is optional)",
    "blacklist.enabled": "Identify messages from the following email addresses or domains as "
                         "violations",
    "blacklist.entries": "Blocked senders (@domain, .domain or address; * and ? before the @)",
    "blacklist.action": "Do the following when a violation occurs",
    "blacklist.forward_to": "Forward to email address",
    "blacklist.forward_subject": "Subject of forwarded messages (optional)",
    "rbl.action": "Do the following when a real-time blacklist anti-spam list violation occurs",
    "rbl.forward_to": "Forward to email address",
    "rbl.forward_subject": "Subject of forwarded messages (optional)",
    "heuristic.enabled": "Enable heuristic spam detection",
    "heuristic.sensitivity": "Engine sensitivity level (1 = low, 5 = high)",
    "heuristic.subject_prefix": "Prepend text to subject line of suspected spam messages",
    "heuristic.x_bulk": "Insert X-Bulk header",
    "heuristic.drop_score": "Drop messages that have a spam score greater than or equal to",
    "heuristic.forward_score": "Forward messages that have a spam score greater than or equal to",
    "heuristic.forward_to": "Forward to email address",
    "rules.body_scanning": BODY_SCANNING_LABEL,
}

PAGE_KEYS = {
    "whitelist": ["whitelist.custom.enabled", "whitelist.custom"],
    "auto_whitelist": ["whitelist.auto.enabled", "whitelist.auto.exclusions"],
    "rbl": ["rbl.action", "rbl.forward_to", "rbl.forward_subject"],
    "blacklist": [k for k in SCHEMA if k.startswith("blacklist.")],
    "heuristic": [k for k in SCHEMA if k.startswith("heuristic.")],
    "spam_rules": ["rules.body_scanning"],
}
# The guide's texts of the actions' options (§5 "Drop message", "Log only", "Forward
# message"; reject is Mailmoat's, SPEC §3 rbl.action)
ACTION_OPTIONS = {"drop": "Drop message", "log": "Log only", "forward": "Forward message",
                  "reject": "Reject message"}
OPTION_LABELS = {key: ACTION_OPTIONS for key in ("rbl.action", "blacklist.action")}
SETTINGS_FORMS = {page: with_option_labels(settings_form(keys, LABELS,
                                                         name=f"{page.title()}Form"),
                                           OPTION_LABELS)
                  for page, keys in PAGE_KEYS.items()}


class RblForm(SETTINGS_FORMS["rbl"]):
    """Three zone rows (guide: "up to three real-time antispam blacklists") + the action."""


for _i in range(RBL_ZONE_ROWS):
    # each control has a visible label of its own, numbered as its row's legend "Blacklist N"
    # (antispam21 C2: the guide's check box and box were both "Real-time blacklist domain
    # name", which read on screen as a repeated heading, and told apart by aria-label only);
    # the box keeps the guide's words around the number
    setattr(RblForm, f"zone{_i}_enabled", BooleanField(ZONE_ENABLED_LABEL.format(n=_i + 1)))
    setattr(RblForm, f"zone{_i}_zone", StringField(
        ZONE_LABEL.format(n=_i + 1), validators=[Optional()]))
    setattr(RblForm, f"zone{_i}_codes", TextAreaField(
        "Identify spam by return codes", render_kw={"rows": 2}, validators=[Optional()]))


NOT_A_RULE_NUMBER = "not a rule number; reload the page"


class SpamRuleForm(RuleFields):
    # index "" = a new rule; original = the rule as the page showed it (settings_service.rule_key)
    index = HiddenField(validators=[Regexp(r"[0-9]*\Z", message=NOT_A_RULE_NUMBER)])
    original = HiddenField()
    save = SubmitField("Save rule")


class DeleteRuleForm(FlaskForm):
    """Delete of a spam rule: posted from the rules without `confirm` it asks for the
    confirmation, which posts the same `index` and `original` with `confirm`; the rule is
    deleted only while it is still the one both pages showed (service.delete_rule)."""
    index = HiddenField(validators=[Regexp(r"[0-9]+\Z", message=NOT_A_RULE_NUMBER)])
    original = HiddenField()
    delete = SubmitField("Delete")
    confirm = SubmitField("Yes")


class AutoListForm(FlaskForm):
    """List management (guide §5): select entries, then one action. Delete posted from the
    list, without `confirm`, asks for the confirmation, which posts the entries it listed
    (hidden `domains`) with `confirm`."""
    domains = SelectMultipleField("Entries", choices=[], validate_choice=False)
    to_custom = SubmitField("Add to Custom Whitelist")
    to_exclusions = SubmitField("Add to Exclusion List")
    delete = SubmitField("Delete")
    confirm = SubmitField("Yes")
