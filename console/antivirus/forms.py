"""Antivirus Policy forms beyond the schema's settings forms (console.schema_forms): the
virus quarantine's Delete, and the central quarantine's mailbox.

av.central_quarantine is a HostPort to the generic forms (host and port boxes); its optional
`mailbox` (shared/settings_entries.py CentralQuarantine) gets a box of its own here, in the
same fieldset. Since the generic forms know the key as host and port only, this page checks
"changed elsewhere since the page was shown" for it itself, as `form_values` does for the
others (console/schema_forms.py module docstring), with the value as shown kept in a hidden
field (nothing secret in it).
"""

from __future__ import annotations

import json
from typing import Any

from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectMultipleField, StringField, SubmitField

from console.schema_forms import CHANGED_MEANWHILE, SettingField, field_name
from shared.settings import SCHEMA, SettingError
from shared.settings_types import RuleError, integer_from_text

__all__ = ["QuarantineDeleteForm", "CENTRAL", "with_central_mailbox", "central_data",
           "central_value"]

CENTRAL = "av.central_quarantine"
MAILBOX_FIELD = field_name(CENTRAL, "mailbox")
SHOWN_FIELD = "central_quarantine_shown"
MAILBOX_WITHOUT_HOST = ("a quarantine mailbox needs the central quarantine's host: type the "
                        "host, or clear the mailbox")


class QuarantineDeleteForm(FlaskForm):
    """Virus Quarantine: the selected copies (checkboxes named `ids`) and Delete."""

    ids = SelectMultipleField("Selected messages", choices=[], validate_choice=False)
    delete = SubmitField("Delete Selected Messages")


def with_central_mailbox(form_class: type) -> type:
    """The Antivirus Settings form with the quarantine mailbox box after the central
    quarantine's host and port."""
    layout = tuple(SettingField(sf.key, (*sf.names, MAILBOX_FIELD), sf.restart)
                   if sf.key == CENTRAL else sf for sf in form_class.setting_fields)
    return type(form_class.__name__, (form_class,), {
        MAILBOX_FIELD: StringField("Quarantine mailbox (empty: quarantine@ the host)"),
        SHOWN_FIELD: HiddenField(),
        "setting_fields": layout})


def central_data(value: dict | None) -> dict[str, Any]:
    """Form `data=` for the mailbox box and the value as shown."""
    return {MAILBOX_FIELD: (value or {}).get("mailbox", ""), SHOWN_FIELD: json.dumps(value)}


def central_value(form, current: dict | None) -> dict[str, Any]:
    """{CENTRAL: the submitted value} to save, or {} when this page left it as shown and it
    was changed elsewhere meanwhile (the newer value stays). SettingError when this page
    changed it and so did someone else."""
    host = (form[field_name(CENTRAL, "host")].data or "").strip()
    port = (form[field_name(CENTRAL, "port")].data or "").strip()
    mailbox = (form[MAILBOX_FIELD].data or "").strip()
    submitted = None
    if host:
        number = integer_from_text(port) if port else SCHEMA[CENTRAL].kind.inner.default_port
        submitted = {"host": host, "port": port if number is None else number}
        if mailbox:
            submitted["mailbox"] = mailbox
    elif mailbox:                           # typed, and would be lost without a host
        raise SettingError([(CENTRAL, MAILBOX_WITHOUT_HOST)])
    try:
        shown = json.loads(form[SHOWN_FIELD].data or "")
    except ValueError:
        return {CENTRAL: submitted}         # a page from before the field: saved as it is
    if shown == current:
        return {CENTRAL: submitted}
    try:
        unchanged = SCHEMA[CENTRAL].kind.check(submitted) == shown
    except RuleError:
        unchanged = False
    if unchanged:
        return {}
    raise SettingError([(CENTRAL, CHANGED_MEANWHILE)])
