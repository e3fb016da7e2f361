"""Antivirus Policy forms beyond the schema's settings forms (console.schema_forms): the
virus quarantine's Delete and Send to central quarantine again, two buttons of one form over
the same selection. (The central quarantine's mailbox is one of its kind's extra fields,
which the schema's forms handle.)"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, SubmitField

__all__ = ["VirusQuarantineForm"]


class VirusQuarantineForm(FlaskForm):
    """Virus Quarantine: the selected copies (checkboxes named `ids`), Delete, and Send to
    central quarantine again (posted to its own URL with the button's formaction)."""

    ids = SelectMultipleField("Selected messages", choices=[], validate_choice=False)
    delete = SubmitField("Delete Selected Messages")
    central_resend = SubmitField("Send to central quarantine again")
