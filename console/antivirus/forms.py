"""Antivirus Policy forms beyond the schema's settings forms (console.schema_forms): the
virus quarantine's Delete and Send to central quarantine again, two buttons of one form over
the same selection, the confirmation of Delete for that selection, and the confirmation of
either for every copy a filter selects. (The
central quarantine's mailbox is one of its kind's extra fields, which the schema's forms
handle.)"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectMultipleField, SubmitField

__all__ = ["VirusQuarantineForm", "VirusQuarantineAllForm"]


class VirusQuarantineForm(FlaskForm):
    """Virus Quarantine: the selected copies (checkboxes named `ids`), Delete, and Send to
    central quarantine again (posted to its own URL with the button's formaction). Delete
    posted from the list, without `confirm`, asks for the confirmation, which posts the
    copies it listed (hidden `ids`) with `confirm`."""

    ids = SelectMultipleField("Selected messages", choices=[], validate_choice=False)
    delete = SubmitField("Delete Selected Messages")
    central_resend = SubmitField("Send to central quarantine again")
    confirm = SubmitField("Yes")


class VirusQuarantineAllForm(FlaskForm):
    """Delete or Send again for every copy the filter `central` selects: posted from the
    list without `confirm`, it asks for the confirmation; posted from that with `confirm`
    and `confirmed` (how many copies it counted and a digest of their ids, so the core is
    asked for exactly those or, when the filter selects others by then, for none:
    console/antivirus/service.py), it asks the core."""

    central = HiddenField()
    confirmed = HiddenField()
    confirm = SubmitField("Yes")
