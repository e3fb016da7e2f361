"""The logon and logoff forms (CSRF on both)."""

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import InputRequired, Length

__all__ = ["LogonForm", "LogoffForm"]


class LogonForm(FlaskForm):
    username = StringField("User name", validators=[InputRequired(), Length(max=256)],
                           render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField("Password", validators=[InputRequired(), Length(max=256)],
                             render_kw={"autocomplete": "current-password"})
    next = HiddenField()
    submit = SubmitField("Log On")


class LogoffForm(FlaskForm):
    submit = SubmitField("Log Off")
