"""Accounts, logon checks, idle timeout and the logon events (SPEC §7, guide Table 3-2).

Rules:
- Two built-in accounts: `admin` (administrator) and `report` (report-only administrator,
  usable only while `admin.report_only.enabled` is on and a password is set).
- Every logon attempt writes a `logon` event (result success or failure) with the client IP;
  the third failure for an account name and every one after it also writes `failed_logon`
  (data {"account", "count"}), which the core's alert engine turns into the failed_logons
  alert. A successful logon resets the count.
- A session ends after `admin.timeout_minutes` without a request (both roles), measured on
  the app's wall clock so tests move time without sleeping.
- A session ends at its next request once its account's password has changed (console,
  `config set`/`import`, `init --reset-admin-password`): at logon the session keeps the
  account's credential generation, an HMAC of the stored password hash under the app's
  secret key (no new state; the cookie shows nothing derived from the hash without the key).
  The session that changed its own password in the console is given the new generation.
- Passwords are compared only through `shared.settings.check_password`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, request, session, url_for
from flask_login import UserMixin, current_user, login_user, logout_user

from console.context import console_context, settings
from console.roles import Role
from shared.events import Action
from shared.settings import PASSWORD_MAX_CHARS, check_password

__all__ = ["User", "ACCOUNTS", "authenticate", "load_user", "log_on", "log_off",
           "check_idle_timeout", "check_credentials", "keep_session_after_password_change",
           "record_unauthorized", "login_required_response",
           "safe_next", "FAILED_LOGONS_ALERT_AT"]

ACCOUNTS = {"admin": Role.ADMINISTRATOR, "report": Role.REPORT_ONLY}
_PASSWORD_KEYS = {"admin": "admin.password", "report": "admin.report_only.password"}
FAILED_LOGONS_ALERT_AT = 3  # guide Table 3-2: alert on the third failure, then every one
ACCOUNT_NAME_MAX_CHARS = 64  # longer names are cut before counting and logging
_SEEN = "seen"  # session key: wall-clock time of the last request
_GENERATION = "generation"  # session key: the account's credential generation at logon


@dataclass(eq=False)
class User(UserMixin):
    id: str
    role: Role

    @property
    def is_administrator(self) -> bool:
        return self.role is Role.ADMINISTRATOR


def _account_enabled(name: str, values: dict) -> bool:
    if name == "report":
        return bool(values["admin.report_only.enabled"]) \
            and values["admin.report_only.password"] is not None
    return name in ACCOUNTS


def load_user(user_id: str) -> User | None:
    """Flask-Login's loader: the account while it exists and is enabled."""
    if user_id in ACCOUNTS and _account_enabled(user_id, settings()):
        return User(user_id, ACCOUNTS[user_id])
    return None


def authenticate(name: str, password: str) -> User | None:
    values = settings()
    if name not in ACCOUNTS or len(password) > PASSWORD_MAX_CHARS:
        # Same work as a real check, so a wrong name is not faster than a wrong password.
        check_password(values["admin.password"], "\x00" + password[:PASSWORD_MAX_CHARS])
        return None
    if not _account_enabled(name, values):
        check_password(values["admin.password"], "\x00" + password)
        return None
    if check_password(values[_PASSWORD_KEYS[name]], password):
        return User(name, ACCOUNTS[name])
    return None


def _generation(name: str, values: dict) -> str:
    """The account's credential generation: changes whenever its stored password hash does."""
    stored = values[_PASSWORD_KEYS[name]] or ""
    return hmac.new(current_app.secret_key, stored.encode(), hashlib.sha256).hexdigest()[:32]


def log_on(name: str, password: str) -> User | None:
    """Check the credentials, start the session and write the events. None = refused."""
    ctx = console_context()
    name = name.strip()[:ACCOUNT_NAME_MAX_CHARS]
    user = authenticate(name, password)
    if user is None:
        count = ctx.failed_logons.fail(name)
        ctx.events.record(Action.LOGON, result="failure", client_ip=request.remote_addr,
                          info=name, data={"user": name})
        if count >= FAILED_LOGONS_ALERT_AT:
            ctx.events.record(Action.FAILED_LOGON, result="failure",
                              client_ip=request.remote_addr, info=name,
                              data={"account": name, "count": count})
        return None
    ctx.failed_logons.reset(name)
    session.clear()  # no session fixation: nothing from before the logon survives
    login_user(user)
    session[_SEEN] = ctx.clock.now()
    session[_GENERATION] = _generation(name, settings())
    ctx.events.record(Action.LOGON, result="success", client_ip=request.remote_addr,
                      info=name, data={"user": name})
    return user


def log_off(user_id: str, reason: str = "logoff") -> None:
    console_context().events.record(Action.LOGOFF, result=reason,
                                    client_ip=request.remote_addr, info=user_id,
                                    data={"user": user_id, "reason": reason})
    logout_user()
    session.clear()


def check_idle_timeout(user) -> bool:
    """Before each request: end the session when idle too long. True when it ended."""
    if not user.is_authenticated:
        return False
    now = console_context().clock.now()
    seen = session.get(_SEEN)
    limit_seconds = settings()["admin.timeout_minutes"] * 60
    if seen is None or now - seen > limit_seconds:
        log_off(user.id, "timeout")
        flash(f"Your session ended after {settings()['admin.timeout_minutes']} minute(s) "
              "without activity. Please log on again.", "info")
        return True
    session[_SEEN] = now
    return False


def check_credentials(user) -> bool:
    """Before each request: end the session when its account's password changed since logon.
    True when it ended."""
    if not user.is_authenticated:
        return False
    if hmac.compare_digest(session.get(_GENERATION, ""), _generation(user.id, settings())):
        return False
    log_off(user.id, "password_changed")
    flash("The password of this account was changed. Please log on again.", "info")
    return True


def keep_session_after_password_change(account: str) -> None:
    """After `account`'s password was saved in this session: when it is this session's own
    account, the session stays logged on (other sessions of the account end)."""
    if current_user.is_authenticated and current_user.id == account:
        session[_GENERATION] = _generation(account, settings())


def record_unauthorized(user_id: str, path: str) -> None:
    console_context().events.record(Action.UNAUTHORIZED_ACCESS, result="denied",
                                    client_ip=request.remote_addr, info=path,
                                    data={"user": user_id, "path": path})


def login_required_response():
    return redirect(url_for("auth.logon", next=request.full_path.rstrip("?")))


def safe_next(target: str | None) -> str:
    """Only a path on this site is followed after logon (no open redirect)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") \
                and not target.startswith("//") and "\\" not in target:
            return target
    return url_for("status.index")
