"""Forms of the Configuration tabs. Settings forms are generated from the schema; the others
(passwords, routing entries, hold-queue actions, certificates) check shape only and leave
meaning to the schema or to console.certs."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import (HiddenField, PasswordField, SelectMultipleField, StringField, SubmitField,
                     TextAreaField)
from wtforms.validators import (DataRequired, EqualTo, InputRequired, Length, Regexp,
                                ValidationError)

from console.schema_forms import settings_form, with_option_labels
from shared.settings import SCHEMA
from shared.shown_text import BIDI_CONTROLS

__all__ = ["TABS", "SETTINGS_PAGES", "page_keys", "SETTINGS_FORMS", "AccountSettingsForm",
           "AdminPasswordForm", "ReportPasswordForm", "RoutingEntryForm", "DefaultRouteForm",
           "DeleteRouteForm", "HoldSelectionForm", "HoldConfirmForm", "RequestForm",
           "InstallForm", "SelfSignedForm", "ACCOUNT_KEYS"]

# The tabs, in the guide's order: (tab id, title, endpoint).
TABS = (
    ("accounts", "Accounts", "configuration.accounts"),
    ("setup", "Setup", "configuration.setup"),
    ("hold", "Hold Queue", "configuration.hold"),
    ("scan_policy", "Scan Policy", "configuration.scan_policy"),
    ("routing", "Routing", "configuration.routing"),
    ("alerts", "Alerts", "configuration.alerts"),
    ("notifications", "Notifications", "configuration.notifications"),
    ("logging", "Logging", "configuration.logging"),
    ("diagnostics", "Diagnostics", "configuration.diagnostics"),
)
SETTINGS_PAGES = ("setup", "scan_policy", "alerts", "notifications", "logging", "diagnostics")

# Labels in the guide's words where the schema's help text reads less well as a label.
LABELS = {
    "smtp.port": "SMTP port number",
    "smtp.listen": "Listen on addresses",
    "smtp.max_incoming": "Maximum number of incoming connections",
    "smtp.max_outgoing": "Maximum number of outgoing connections",
    "smtp.notify_from": "Alert/Notification “From:”",
    "smtp.hostname": "Host name in the SMTP banner (empty = this machine's name)",
    "smtp.tls.outbound": "STARTTLS when delivering",
    "delivery.paused": "Pause message delivery",
    "delivery.reject_incoming": "Reject incoming messages",
    "delivery.retry_days": "Number of days to attempt delivery",
    "http.port": "HTTP port number",
    "https.port": "HTTPS port number",
    "https.logons": "Enable SSL & encryption for logons",
    "disclaimer.enabled": "Enable custom disclaimer",
    "disclaimer.text": "Disclaimer text",
    "timezone": "Local time zone",
    "scan.temp_dir": "Temporary files directory (empty = tmp/ in the data home)",
    "scan.mode": "Files to scan",
    "scan.include": "Include list",
    "scan.exclude": "Exclude list",
    "scan.unprocessable": "Messages that can't be processed",
    "admin.report_only.enabled": "Enable Report-only Administrator account",
    "admin.timeout_minutes": "Administrator timeout (minutes)",
    "admin.emails": "Administrator email addresses",
    "notify.admin": "Notify the administrator",
    "notify.sender": "Notify the sender",
    "notify.admin.subject": "Message for administrator: subject",
    "notify.admin.body": "Message for administrator: body",
    "notify.sender.subject": "Message for sender: subject",
    "notify.sender.body": "Message for sender: body",
    "logging.local": "Enable local logging",
    "logging.retention_days": "Delete logs after (days, 0 = never)",
    "forwarding.enabled": "Enable event forwarding to a SIEM",
    # the help of these ends with NOT_BUILT_FEATURES["siem"], which the tab's notice says once
    "forwarding.host": "SIEM receiver host",
    "forwarding.port": "SIEM receiver port",
    "forwarding.transport": "SIEM transport",
    "forwarding.format": "SIEM record format",
    "forwarding.ca_file": "CA file to verify the receiver",
    "diagnostics.queue_file_save": "Queue File Save setting",
    "diagnostics.conversation.inbound": "Inbound SMTP conversation logging",
    "diagnostics.conversation.outbound": "Outbound SMTP conversation logging",
    "diagnostics.conversation.errors": "Error types that trigger a log (Save log on error)",
    "diagnostics.conversation.data": "DATA stream logging",
}

# Option texts in the guide's words where a select would otherwise show the bare values
# (guide §3 "Configuring queue file save and SMTP conversation logging"); names such as
# TLS are written so by console/schema_forms.py for every page.
OPTION_LABELS = {
    "diagnostics.queue_file_save": {
        "off": "Disable", "on_error": "Save on error", "all": "Save all"},
    "diagnostics.conversation.inbound": {
        "off": "Disable", "on_error": "Save log on error", "all": "Log all inbound traffic"},
    "diagnostics.conversation.outbound": {
        "off": "Disable", "on_error": "Save log on error", "all": "Log all outbound traffic"},
    "diagnostics.conversation.errors": {
        "all": "All SMTP errors", "communication": "Communication error",
        "protocol": "Protocol error", "local": "Local processing error",
        "unsupported": "Unsupported operation"},
    "diagnostics.conversation.data": {
        "ignore": "Ignore DATA stream", "summarize": "Summarize DATA stream",
        "echo": "Echo DATA stream"},
}


def page_keys(page: str) -> list[str]:
    """The schema's keys of a page that a generated form edits (not passwords)."""
    return [key for key, s in SCHEMA.items()
            if s.page == page and s.secret != "hashed" and s.generated is None]


SETTINGS_FORMS = {page: with_option_labels(settings_form(page_keys(page), LABELS,
                                                         name=f"{page}_form"), OPTION_LABELS)
                  for page in SETTINGS_PAGES}
ACCOUNT_KEYS = page_keys("accounts")
AccountSettingsForm = settings_form(ACCOUNT_KEYS, LABELS, name="AccountSettingsForm")
DefaultRouteForm = settings_form(["routing.default"], {"routing.default": "Default routing"},
                                 name="DefaultRouteForm")


class _PasswordForm(FlaskForm):
    new_password = PasswordField("New password", validators=[InputRequired()],
                                 render_kw={"autocomplete": "new-password", "maxlength": 32})
    confirm = PasswordField("Confirm", validators=[
        InputRequired(), EqualTo("new_password", message="the two passwords differ")],
        render_kw={"autocomplete": "new-password", "maxlength": 32})
    submit = SubmitField("Change Password")


class AdminPasswordForm(_PasswordForm):
    """Administrator password (32 characters max, case-sensitive)."""


class ReportPasswordForm(_PasswordForm):
    """Report-only administrator password (must differ from the administrator's)."""


class RoutingEntryForm(FlaskForm):
    match = StringField("Routed host, domain or IP address (* and ? allowed)",
                        validators=[Length(max=253)])
    relay = StringField("Destination relay host (empty = MX of the routed name)",
                        validators=[Length(max=253)])
    port = StringField("Port", default="25", render_kw={"inputmode": "numeric", "size": 6})
    original = HiddenField()  # the entry's match when editing: detects a list changed meanwhile
    submit = SubmitField("Save")


class DeleteRouteForm(FlaskForm):
    """Delete of a local routing entry: posted from the list (`original`, the entry's match)
    it asks for the confirmation, which posts `confirm` and `shown`, the entry as it showed
    it (JSON), so that only that entry is removed (service.delete_route)."""
    original = HiddenField()
    shown = HiddenField()
    submit = SubmitField("Delete")
    confirm = SubmitField("Yes")


class HoldSelectionForm(FlaskForm):
    ids = SelectMultipleField("Selected messages", choices=[], validate_choice=False)
    action = HiddenField()
    reprocess = SubmitField("Reprocess Messages")
    drop = SubmitField("Drop Messages")
    forward = SubmitField("Forward Messages")


class HoldConfirmForm(FlaskForm):
    action = HiddenField(validators=[InputRequired()])
    ids = HiddenField()  # comma-separated queue ids, the messages the question counted
    scope = HiddenField()  # "all": they were every message in hold (the question's words)
    subject = StringField("Subject", validators=[Length(max=255)])
    address = StringField("Email address", validators=[Length(max=320)])
    confirm = SubmitField("Yes")


# C0, DEL, C1, the line separators and the bidi controls: none belongs in a name a CA
# writes into a certificate, and a bidi control would make the subject read otherwise.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029%s]"
                                 % "".join(map(chr, sorted(BIDI_CONTROLS))))


def _no_control_characters(form, field) -> None:
    if _CONTROL_CHARACTERS.search(field.data or ""):
        name = field.label.text.split(" (")[0]
        raise ValidationError(f"{name} cannot hold control characters (a tab, a line break, "
                              "a bidi control); type it as one line of text")


class RequestForm(FlaskForm):
    """The request's subject (guide §3). A required field of spaces only is empty, as
    console.certs would leave it out of the request (DataRequired, not InputRequired);
    control characters are refused by name, as a CA would refuse or copy them (certs17 C7)."""
    common_name = StringField("Common Name (this server's host name or IP address)",
                              validators=[DataRequired(), Length(max=64),
                                          _no_control_characters])
    organization = StringField("Organization", validators=[DataRequired(), Length(max=64),
                                                           _no_control_characters])
    unit = StringField("Organization Unit", validators=[Length(max=64),
                                                        _no_control_characters])
    city = StringField("City/Locality", validators=[DataRequired(), Length(max=128),
                                                    _no_control_characters])
    state = StringField("State/Province", validators=[DataRequired(), Length(max=128),
                                                      _no_control_characters])
    country = StringField("Country/Region (two-letter code, e.g. DE)", validators=[
        DataRequired(), Regexp(r"^[A-Za-z]{2}$", message="a two-letter country code")],
        render_kw={"size": 2, "maxlength": 2})
    email = StringField("E-mail Address", validators=[DataRequired(), Length(max=128),
                                                      _no_control_characters])
    submit = SubmitField("Create Request")


class InstallForm(FlaskForm):
    certificate = TextAreaField("Certificate (PEM, including header and footer)",
                                validators=[InputRequired(), Length(max=200_000)],
                                render_kw={"rows": 12, "class": "pem"})
    submit = SubmitField("Install Certificate")


class SelfSignedForm(FlaskForm):
    common_name = StringField("Common Name", validators=[InputRequired(), Length(max=64)])
    submit = SubmitField("Create Self-signed Certificate")
