"""Accounts, logon checks, sessions, idle timeout and the logon events (SPEC §7, guide
Table 3-2).

Rules:
- Two built-in accounts: `admin` (administrator) and `report` (report-only administrator,
  usable only while `admin.report_only.enabled` is on and a password is set).
- Every logon attempt writes a `logon` event (result succeeded or failed, the guide's words) with the client IP;
  a failed one's user name as typed, its control characters escaped (`event_text`);
  the third failure for an account name and every one after it also writes `failed_logon`
  (data {"account", "count"}), which the core's alert engine turns into the failed_logons
  alert. A successful logon resets the count.
- A client with too many failed logons is locked out for a while (console.throttle): its
  attempts are refused (`LogonsLockedOut`) without checking the password, and the lockout
  writes one `failed_logon` event (result locked_out), which raises the same alert. The
  event's data `client_key` is what was counted and is refused: the address, or for an
  IPv6 client its whole /64, which the info names too.
- A session lives on the server (console.sessions): the cookie carries only its random id.
  A request whose id is not live is logged off (`end_unknown_session`). Log Off, the idle
  timeout, a password change and a logon in the same browser (which replaces its session:
  logoff reason `logged_on_again`) end the session on the server, so an old copy of the
  cookie opens nothing.
- A session ends after `admin.timeout_minutes` without a request (both roles), measured on
  the app's wall clock so tests move time without sleeping. Its `logoff` (reason timeout) is
  written by what notices first: the console's job, about once a minute (console.jobs;
  fixer19 F3: a timeout nothing noticed had no logoff until the next logon), the next
  logon, or the session's own next request. Each writes it only for a session it really
  ended (`end_timed_out`, `log_off`), so it is written once; a session the job ended is,
  at its next request, one that is not live (`end_unknown_session`). It is stamped with
  the time the session timed out: its last request + the timeout (guide Table 7-5 "the
  date and time of logoff"; reports18 B2: it had the later time).
- A session ends at its next request once its account's password has changed (console,
  `config set`/`import`, `init --reset-admin-password`): at logon the session keeps the
  account's credential generation, an HMAC of the stored password hash under the app's
  secret key; it is compared with the stored hash's at every request. The session that
  changed its own password in the console is given the new generation.
- A session started over HTTPS is not used over plain HTTP (its cookie is `Secure` and has
  its own name, console.app; the server refuses it as well).
- Passwords are compared only through `shared.settings.check_password`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, request, session, url_for
from flask_login import UserMixin, current_user, login_user, logout_user
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from console.context import console_context, settings
from console.roles import Role
from console.security import LOGGED_TEXT_MAX_CHARS, event_text, record_within_budget
from console.sessions import SessionRecord, Sessions
from console.throttle import FAILED_LOGON_WINDOW_SECONDS, FAILED_LOGONS_PER_CLIENT, client_key
from shared.events import FAILED, SUCCEEDED, Action, EventWriter
from shared.settings import PAGES, PASSWORD_MAX_CHARS, check_password

__all__ = ["User", "ACCOUNTS", "authenticate", "load_user", "log_on", "log_off",
           "end_timed_out", "check_idle_timeout", "check_credentials", "end_unknown_session",
           "check_session", "keep_session_after_password_change", "record_unauthorized",
           "login_required_response", "unsaved_notice", "safe_next", "LogonsLockedOut",
           "FAILED_LOGONS_ALERT_AT"]

ACCOUNTS = {"admin": Role.ADMINISTRATOR, "report": Role.REPORT_ONLY}
_PASSWORD_KEYS = {"admin": "admin.password", "report": "admin.report_only.password"}
FAILED_LOGONS_ALERT_AT = 3  # guide Table 3-2: alert on the third failure, then every one
ACCOUNT_NAME_MAX_CHARS = 64  # longer names are cut before counting and logging
# Flask-Login keeps the user id (for us: the session id) under this session key.
_SESSION_ID_KEY = "_user_id"


class LogonsLockedOut(Exception):
    """Logons from this client are refused for `seconds` more (console.throttle).
    `client_key` is what it is counted by: its IPv4 address, or its IPv6 /64."""

    def __init__(self, seconds: float, client_key: str = ""):
        super().__init__(f"logons refused for {seconds:.0f} s")
        self.seconds = seconds
        self.client_key = client_key

    @property
    def is_network(self) -> bool:
        """True when a whole network is locked out (an IPv6 /64), not one address."""
        return "/" in self.client_key

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.seconds / 60))


@dataclass(eq=False)
class User(UserMixin):
    id: str                         # the account name
    role: Role
    session_id: str | None = None   # console.sessions: what Flask-Login keeps in the cookie
    record: SessionRecord | None = None     # that session as this request found it

    @property
    def is_administrator(self) -> bool:
        return self.role is Role.ADMINISTRATOR

    def get_id(self) -> str | None:
        return self.session_id


def _account_enabled(name: str, values: dict) -> bool:
    if name == "report":
        return bool(values["admin.report_only.enabled"]) \
            and values["admin.report_only.password"] is not None
    return name in ACCOUNTS


def load_user(session_id: str) -> User | None:
    """Flask-Login's loader: the live session's user, while its account exists and is
    enabled and (for a session started over HTTPS) the request came over HTTPS."""
    sessions = console_context().sessions
    record = sessions.get(session_id)
    if record is None or (record.is_secure and not request.is_secure):
        return None
    if record.account not in ACCOUNTS or not _account_enabled(record.account, settings()):
        # enabling the account again does not revive it; the logoff is written by the one
        # request (or job) that ended it
        if sessions.end(session_id) is not None:
            _record_logoff(record.account, "account_disabled", request.remote_addr)
        return None
    return User(record.account, ACCOUNTS[record.account], session_id, record)


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


def _write_logoff(events: EventWriter, user_id: str, reason: str, client_ip: str | None,
                  at: float | None = None) -> None:
    # the result is the guide's Succeeded; how it ended (logoff, timeout) is its data's
    # reason, which the detail report shows ("admin; reason=timeout"); `at`: when it ended,
    # for a logoff written later (a timeout), else now
    events.record(Action.LOGOFF, at=at, result=SUCCEEDED, client_ip=client_ip, info=user_id,
                  data={"user": user_id, "reason": reason})


def _record_logoff(user_id: str, reason: str, client_ip: str | None,
                   at: float | None = None) -> None:
    """`_write_logoff` through this request's app's event writer."""
    _write_logoff(console_context().events, user_id, reason, client_ip, at=at)


def _timed_out_at(record: SessionRecord, idle_seconds: float) -> float:
    """When a session idle past `idle_seconds` ended (module rules)."""
    return record.seen + idle_seconds


def end_timed_out(sessions: Sessions, events: EventWriter, now: float,
                  idle_seconds: float) -> list[SessionRecord]:
    """End the sessions without a request for more than `idle_seconds` at `now` and write
    each one's `logoff` (reason timeout, stamped when it timed out); returns the sessions
    ended. What a logon does first, and the console's job (console.jobs) about once a
    minute: needs no request, and is safe to run at once with requests and with itself
    (`Sessions.end_idle` hands each session to one caller only, so its logoff is written
    once)."""
    ended = sessions.end_idle(now, idle_seconds)
    for record in ended:
        _write_logoff(events, record.account, "timeout", record.client_ip,
                      at=_timed_out_at(record, idle_seconds))
    return ended


def log_on(name: str, password: str | None) -> User | None:
    """Check the credentials, start the session and write the events. None = refused.
    `password` None: a form refused for its fields (empty, too long), a failed logon like
    any other, so that it is counted and throttled too.

    Raises LogonsLockedOut while the client is locked out, and for the failure that locks
    it out."""
    ctx = console_context()
    client_ip = request.remote_addr
    now = ctx.clock.now()
    counted_as = client_key(client_ip)
    with ctx.throttle.one_at_a_time(client_ip):
        locked_for = ctx.throttle.locked_for(client_ip, now)
        if locked_for:
            raise LogonsLockedOut(locked_for, counted_as)
        name = name.strip()[:ACCOUNT_NAME_MAX_CHARS]
        user = authenticate(name, password) if password is not None else None
        if user is None:
            # Typed by anyone who reaches the logon page: stored with its control
            # characters escaped, as an unauthorized_access path is, so that the report
            # page, the CSV and the CLI all show the same safe text (console18 B5).
            name = event_text(name)
            count = ctx.failed_logons.fail(name)
            ctx.events.record(Action.LOGON, result=FAILED, client_ip=client_ip,
                              info=name, data={"user": name})
            if count >= FAILED_LOGONS_ALERT_AT:
                ctx.events.record(Action.FAILED_LOGON, result=FAILED,
                                  client_ip=client_ip, info=name,
                                  data={"account": name, "count": count})
            locked_for = ctx.throttle.fail(client_ip, now)
            if locked_for:
                locked = LogonsLockedOut(locked_for, counted_as)
                who = (f"the network {counted_as} (this client's /64)" if locked.is_network
                       else "this client")
                ctx.events.record(
                    Action.FAILED_LOGON, result="locked_out", client_ip=client_ip,
                    info=f"{FAILED_LOGONS_PER_CLIENT} failed logons from {who} within "
                         f"{FAILED_LOGON_WINDOW_SECONDS // 60} minutes: its logons are refused "
                         f"for {locked_for / 60:.0f} minutes",
                    data={"account": name, "failures": FAILED_LOGONS_PER_CLIENT,
                          "window_seconds": FAILED_LOGON_WINDOW_SECONDS,
                          "locked_seconds": locked_for, "client_key": counted_as})
                raise locked
            return None
    ctx.failed_logons.reset(name)
    end_timed_out(ctx.sessions, ctx.events, now, settings()["admin.timeout_minutes"] * 60)
    # The browser's earlier session, which this logon replaces: ended on the server too, or
    # a copy of its cookie (an administrator's, under a report logon) would still open
    # its pages (authz finding 3).
    replaced = ctx.sessions.end(session.get(_SESSION_ID_KEY))
    if replaced is not None:
        _record_logoff(replaced.account, "logged_on_again", client_ip)
    session.clear()  # no session fixation: nothing from before the logon survives
    user.session_id = ctx.sessions.start(SessionRecord(
        account=name, generation=_generation(name, settings()), seen=now,
        is_secure=request.is_secure, client_ip=client_ip))
    login_user(user)
    ctx.events.record(Action.LOGON, result=SUCCEEDED, client_ip=client_ip,
                      info=name, data={"user": name})
    return user


def log_off(user: User, reason: str = "logoff", at: float | None = None) -> None:
    """End `user`'s session on the server and in the browser, and write the logoff event
    (stamped `at`, else now) when this call ended it: one that ended meanwhile (the job
    ended it timed out, a Log Off in another tab) had its logoff written by what ended it."""
    if console_context().sessions.end(user.session_id) is not None:
        _record_logoff(user.id, reason, request.remote_addr, at=at)
    logout_user()
    session.clear()


def check_session(user) -> bool:
    """Before each request, and before a refusal for the role that comes ahead of the view
    (console.roles.refused_for_role): the checks below in turn. True when the session
    ended (or was not live) and the request is now anonymous."""
    return end_unknown_session(user) or check_credentials(user) or check_idle_timeout(user)


def end_unknown_session(user) -> bool:
    """Before each request: a cookie that names a session which is not live (ended, timed
    out, from before a restart's sweep, or started over HTTPS and sent over HTTP) is cleared.
    True when that happened."""
    if user.is_authenticated or _SESSION_ID_KEY not in session:
        return False
    timed_out = console_context().sessions.ended_by_timeout(session.get(_SESSION_ID_KEY))
    session.clear()
    if timed_out:       # the job (console.jobs) or a logon ended it: say why, as below
        _flash_timed_out()
    else:
        flash("Your session has ended. Please log on again.", "info")
    return True


def _flash_timed_out() -> None:
    flash(f"Your session ended after {settings()['admin.timeout_minutes']} minute(s) "
          "without activity. Please log on again.", "info")


def check_idle_timeout(user) -> bool:
    """Before each request: end the session when idle too long. True when it ended."""
    if not user.is_authenticated:
        return False
    # The record load_user found: read again, a session another thread ended meanwhile (a
    # Log Off in another tab) would look timed out and get a second, wrong logoff event.
    ctx = console_context()
    now = ctx.clock.now()
    limit_seconds = settings()["admin.timeout_minutes"] * 60
    if user.record.idle_past(now, limit_seconds):
        log_off(user, "timeout", at=_timed_out_at(user.record, limit_seconds))
        _flash_timed_out()
        return True
    ctx.sessions.update(user.session_id, seen=now)
    return False


def check_credentials(user) -> bool:
    """Before each request: end the session when its account's password changed since logon.
    True when it ended."""
    if not user.is_authenticated:
        return False
    if hmac.compare_digest(user.record.generation, _generation(user.id, settings())):
        return False
    log_off(user, "password_changed")
    flash("The password of this account was changed. Please log on again.", "info")
    return True


def keep_session_after_password_change(account: str) -> None:
    """After `account`'s password was saved in this session: when it is this session's own
    account, the session stays logged on (other sessions of the account end)."""
    if current_user.is_authenticated and current_user.id == account:
        console_context().sessions.update(current_user.session_id,
                                          generation=_generation(account, settings()))


def record_unauthorized(user_id: str, path: str) -> None:
    """The unauthorized_access event of a refused request (console.roles), within the
    client's budget of them (console.throttle.UnauthorizedBudget). Of the path, what a log
    line keeps: in the info as `event_text` shows it, in the data cut as it is, with
    `path_chars` saying how long it was when cut."""
    ctx = console_context()
    data = {"user": user_id, "path": path[:LOGGED_TEXT_MAX_CHARS]}
    if len(path) > LOGGED_TEXT_MAX_CHARS:
        data["path_chars"] = len(path)
    record_within_budget(ctx, ctx.unauthorized, request.remote_addr,
                         Action.UNAUTHORIZED_ACCESS, result="denied", info=event_text(path),
                         data=data)


def _accepts_get(target: str) -> bool:
    """True when the local URL `target` has a page to show (a GET view)."""
    adapter = current_app.create_url_adapter(request)
    try:
        adapter.match(urlsplit(target).path, method="GET")
    except RequestRedirect:     # e.g. a missing trailing slash: the redirect leads to a page
        return True
    except HTTPException:       # no such page, or one that only takes a form (405)
        return False
    return True


def _form_page() -> str | None:
    """For a form posted without a live session: the page that showed the form (the same
    URL when it has a GET view, else the same-site Referer), so that logging on again leads
    back there and not to a URL that only takes the post (405)."""
    own = request.full_path.rstrip("?")
    if _accepts_get(own):
        return own
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host and referrer.path:
        return referrer.path + (f"?{referrer.query}" if referrer.query else "")
    return None


def login_required_response():
    """Send an anonymous request to the logon page; `next` is where logging on leads back.
    A form posted without a live session (it ended, or timed out, while the page was open)
    was not saved: the logon page says so, and so does the page logging on leads back to
    (`unsaved=1`; console18 B2: an administrator who clicked Save had no reason to think
    the save had failed)."""
    if request.method in ("GET", "HEAD"):
        target = request.full_path.rstrip("?")
        return redirect(url_for("auth.logon", next=target) if target else url_for("auth.logon"))
    target = _form_page()
    if request.endpoint == "auth.logoff":   # nothing to save: the session is over already
        return redirect(url_for("auth.logon", next=target) if target else url_for("auth.logon"))
    flash(f"{unsaved_notice(target)} Log on, then make it again.", "warning")
    return redirect(url_for("auth.logon", next=target, unsaved=1) if target
                    else url_for("auth.logon", unsaved=1))


def unsaved_notice(target: str | None) -> str:
    """What says that a form posted from the page at `target` (None: unknown) was not saved
    because the session had ended."""
    return f"Your change to {_page_title(target)} was not saved: your session had ended."


def _page_title(target: str | None) -> str:
    """The page at the local URL `target` as the left pane and tabs name it (shared.settings
    PAGES), else "the page" named by its path."""
    if not target:
        return "the page"
    path = urlsplit(target).path
    try:
        endpoint, args = current_app.create_url_adapter(request).match(path, method="GET")
    except (HTTPException, RequestRedirect):
        return f"the page {path}"
    page = args.get("page") or endpoint.rsplit(".", 1)[-1]
    return PAGES.get(page, f"the page {path}")


def safe_next(target: str | None) -> str:
    """Only a page on this site is followed after logon (no open redirect, and never a URL
    that only takes a form post); anything else leads to Status."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") \
                and not target.startswith("//") and "\\" not in target \
                and _accepts_get(target):
            return target
    return url_for("status.index")
