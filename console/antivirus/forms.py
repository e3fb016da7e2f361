"""Antivirus Policy forms beyond the schema's settings forms (console.schema_forms): the
virus quarantine's Delete. (The central quarantine's mailbox is one of its kind's extra
fields, which the schema's forms handle.)"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, SubmitField

__all__ = ["QuarantineDeleteForm"]


class QuarantineDeleteForm(FlaskForm):
    """Virus Quarantine: the selected copies (checkboxes named `ids`) and Delete."""

    ids = SelectMultipleField("Selected messages", choices=[], validate_choice=False)
    delete = SubmitField("Delete Selected Messages")
