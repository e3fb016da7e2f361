"""The logon and logoff forms (CSRF on both).

The logon page does not let the browser check the fields (`novalidate`), so every message
about a field comes from here and the view says it on the page.
"""

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import InputRequired, Length

from shared.settings import PASSWORD_MAX_CHARS

__all__ = ["LogonForm", "LogoffForm"]

LOGON_FIELD_MAX_CHARS = 256   # far over any account name or password: only bounds the work


class LogonForm(FlaskForm):
    username = StringField("User name", validators=[
        InputRequired("Enter your user name."),
        Length(max=LOGON_FIELD_MAX_CHARS, message="No account has a user name that long.")],
        render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField("Password", validators=[
        InputRequired("Enter your password."),
        Length(max=LOGON_FIELD_MAX_CHARS, message="The password is too long: a console "
                                                  f"password has at most {PASSWORD_MAX_CHARS} "
                                                  "characters.")],
        render_kw={"autocomplete": "current-password"})
    next = HiddenField()
    # "1" when a form posted after the session ended led here: once logged on, the page
    # it leads back to says that the change was not saved (auth.service.unsaved_notice)
    unsaved = HiddenField()
    submit = SubmitField("Log On")

    @property
    def field_messages(self) -> list[str]:
        """What is wrong with the user name and password, in page order."""
        return [*self.username.errors, *self.password.errors]


class LogoffForm(FlaskForm):
    submit = SubmitField("Log Off")
