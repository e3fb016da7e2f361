"""Reporting forms: the range pickers, the detail report's action checkboxes, search box and
"leave out whitelisted" box.

Fields check shape only; `shared.report_time` reads the times (in the `timezone` setting) and
says what is wrong. The same classes read the query string of a generated report (GET, no
CSRF: it changes nothing) and the POST of "Write to CSV" (CSRF: it writes a file in logs/).
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectMultipleField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from shared.events import Action
from shared.report import ACTION_LABELS

__all__ = ["SummaryForm", "DetailForm", "TIME_INPUT"]

# The browser's date-time picker (minutes); typed ISO 8601 with an offset is accepted too.
TIME_INPUT = {"type": "datetime-local", "step": "60"}


class SummaryForm(FlaskForm):
    start = StringField("From", validators=[Optional(), Length(max=40)], render_kw=TIME_INPUT)
    end = StringField("To", validators=[Optional(), Length(max=40)], render_kw=TIME_INPUT)
    generate = SubmitField("Generate Report")
    write_csv = SubmitField("Write to CSV")


class DetailForm(SummaryForm):
    actions = SelectMultipleField("Actions", choices=[SelectChoice(a.value, ACTION_LABELS[a])
                                                      for a in Action],
                                  option_widget=CheckboxInput(), widget=ListWidget())
    search = StringField("Search", validators=[Optional(), Length(max=200)])
    # shared.report.DetailFilter.without_whitelisted
    without_whitelisted = BooleanField("Leave out whitelisted passes")
