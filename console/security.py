"""Request-level protection: security headers, request ids, error pages, HTTPS for logons,
session cookies per scheme, bidi controls shown in pages.

Rules:
- No traceback or exception text ever reaches a page: every error page is a fixed text with
  the request id; the exception is logged with that id (STYLE §1 "Console"). Any other
  error answer (a 4xx) logs one short line with its id and no traceback, so what a client
  sends cannot fill the log.
- A request that fails for the data home, not for a bug in the console (a full disk:
  SQLite's "database or disk is full", ENOSPC; mailmoat.db locked by another program past
  the busy timeout: shared.known_failures, which says which and in what words), is answered
  503 with a page that says so, and logs one WARNING line with the request id, no traceback
  (`_PAGES`). A Save or a Hold Queue button on a full disk ended on the 500 "Something went
  wrong" page with an ERROR and a traceback, while `mailmoat config set` named the full
  disk (diskfull21 B1). The page says what the request did: a write "could not save this:
  nothing was changed by the step that failed", a read (GET, HEAD) "could not show this
  page" (review21b R1: a Status page read under another program's exclusive lock said
  "could not save this"). The data home's disk is named full only when its free space says
  so; SQLITE_LOCKED, the console's own connection in its own way, is a bug (500, ERROR with
  the traceback), not "another program".
- The error page cannot fail: when it cannot be drawn, a plain page with the same text and
  request id is sent instead (`_PLAIN_ERROR_PAGE`). A Host header that is no host name gets
  that plain 400 page before anything else runs: werkzeug cannot build URLs for it, and
  every page's layout builds some.
- The console's forms take text only: a request that carries a file (a multipart post with
  a file part, `curl -F field=@file`) is answered 400 before any form reads it. WTForms
  hands a field the upload object, which its validators take for text: a 500 and a
  traceback in the log, the logon form included, for anyone to send (certs17 C9).
- Every response carries the security headers below; the pages use no inline script or
  style, so the Content-Security-Policy forbids both.
- With `https.logons` on, the logon and password pages answer plain HTTP with a redirect to
  the same path on the HTTPS port (guide §3 "Configuring HTTPS options").
- A form is taken on its CSRF token, which lives in the session (`FormProtection`). Over
  HTTPS the browser's Origin header, or its Referer when it sends no Origin, must also name
  this console when it is sent: a post from another site is refused ("Form refused") even
  with a token, and the page names the header and both addresses. A post with neither
  header rests on its token. Flask-WTF's strict SSL check refused every HTTPS post without
  a Referer as "Form expired … reload the page", a valid token or not, so a browser set to
  send none (a privacy setting, an extension, a proxy) could not log on at all once
  `https.logons` was on, and reloading never helped (firstday20 B1). What that check guards
  against is a token planted over plain HTTP; here the token is bound to the HTTPS session,
  whose `__Host-` cookie neither plain HTTP nor another host (a sibling under the same
  parent domain) can set or read, so a missing Referer proves nothing, while a foreign one
  still shows a cross-site post.
- What the header check cannot stop: a page that sends no Referer (`<meta name="referrer"
  content="no-referrer">`, a sandboxed frame) arrives with `Origin: null` or none, and only
  its token decides. A token is worth something to an attacker only with its session
  cookie, so the risk is a cookie planted in the victim's browser, and with it a logon CSRF:
  the victim's browser logged on to the attacker's own account (log_on clears the session,
  so a planted token never reaches an administrator's session or its forms). `__Host-`
  (SECURE_SESSION_COOKIE) leaves two ways to plant one: another HTTPS service on this same
  host name, any port (cookies do not keep ports apart), and plain HTTP, whose
  `mailmoat_session` no prefix can protect (anyone on the path, or a sibling host with
  Domain=, can set it; its posts have no header check, as the network can forge them).
  "null" is not refused: a browser set to send no Referer (firstday20 B1) may send it on the
  console's own posts too, and it is not known that none does.
- The session cookie of HTTPS is its own: named SECURE_SESSION_COOKIE, marked `Secure`, and
  never read over HTTP; plain HTTP keeps `mailmoat_session` (`SchemeSessionInterface`). A
  session started at the HTTPS logon therefore never travels or works over HTTP. One name
  for both would not do: a browser does not let an http:// page replace a `Secure` cookie,
  so the HTTP port could no longer start a session once HTTPS had set one.
- Text shown in a page has its bidirectional control characters shown as visible marks
  (`visible_bidi`, installed as Jinja's `finalize`): a right-to-left override in a sender or
  a file name would otherwise show `exe.gpj` as `jpg.exe`. Every plain value a template
  prints passes through it; markup made by code (form fields, charts) does not, so what a
  form field holds is sent back unchanged, and the charts call it themselves. A value a
  template writes into a form by hand (a hidden input) is marked `|e` for the same reason
  (escaped, it is Markup, which finalize leaves alone).
- Text from mail keeps its punctuation where its writer put it: a cell that shows a subject
  (or a subject-line pattern) takes its direction from its text (`dir="auto"`), and in a
  sentence that quotes such values (an event's info, a hold reason, a report detail) each
  quoted value is isolated (`<bdi>`, the `isolated` filter). In a left-to-right sentence,
  the quote and asterisk of "subject line '*מבצע*'" and the comma between two Hebrew terms
  were laid out with the Hebrew run, on its other side (tester i18n19 C2).
- Addresses and file names are identifiers and read left to right whatever letter they
  begin with, as an IRI does (RFC 3987 §4.1): their cells keep the page's direction and
  each one holding a right-to-left letter is a left-to-right isolate of its own
  (`<bdi dir="ltr">`, the `identifiers` filter; a detail's `file=…`, `address=…` the same).
  Given the direction of its first letter, `מסמך.exe` showed its `.exe` at the left end,
  `אבי@bank.example` its domain first, and a list beginning with a Hebrew address ran the
  two addresses into each other (review19 r4 R1).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import unicodedata
from functools import wraps
from typing import Callable
from urllib.parse import urlsplit

from flask import Flask, g, redirect, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from markupsafe import Markup, escape
from werkzeug.exceptions import BadHost, HTTPException

from console.context import ConsoleContext, console_context, settings
from console.throttle import EventBudget
from shared.busy import is_held_by_another
from shared.disk import is_out_of_space
from shared.events import Action
from shared.known_failures import (DATA_HOME_FULL, LOCKED, OUT_OF_SPACE, KnownFailure,
                                   known_failure)
from shared.shown_text import visible_bidi

__all__ = ["install", "FormProtection", "ForeignFormError", "logon_page", "SECURITY_HEADERS",
           "https_url", "SchemeSessionInterface", "SECURE_SESSION_COOKIE", "visible_bidi",
           "client_ip", "record_http_violation", "is_http_violation", "PLAIN_HTTP_ON_HTTPS",
           "event_text", "record_within_budget", "LOGGED_TEXT_MAX_CHARS"]

log = logging.getLogger("mailmoat.console")

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                                "form-action 'self'; frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
# No Strict-Transport-Security, on purpose: HSTS binds the whole host name, every port
# (RFC 6797 §8.3 keeps a non-80 port as it is), so a browser that saw it once would ask for
# https://host:8003/ — and the plain-HTTP port the guide keeps (and any other web service
# on the host) would stop working for it. The Secure cookie of HTTPS is what keeps an HTTPS
# session off the wire.

# The `__Host-` prefix makes browsers refuse the name unless it is set over HTTPS, Secure,
# with Path=/ and no Domain: only this host can set it, never a sibling host through a
# parent domain's Domain= (review20c R1; `__Secure-` allowed Domain=, see the module rules).
# The console's cookie is host-only with Path=/ already (no SESSION_COOKIE_DOMAIN or PATH).
SECURE_SESSION_COOKIE = "__Host-mailmoat_session"

MAX_POST_OCTETS = 2 * 1024 * 1024      # the largest request body the console reads

_MESSAGES = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Not allowed", "Your account does not have permission to open this page. "
                         "The attempt has been recorded."),
    404: ("Not found", "There is no such page."),
    405: ("Not allowed", "This page does not accept that kind of request."),
    413: ("Too large", f"The form was larger than the console accepts "
                       f"({MAX_POST_OCTETS // (1024 * 1024)} MiB) and nothing was saved. "
                       "No list the console edits needs that much: check what was pasted."),
    500: ("Something went wrong", "The console could not complete the request. "
                                  "Nothing was changed by the failed step."),
}

# The 503 pages of the data home's failures (module rules; shared.known_failures): by the
# failure's kind, its title and the page's text for a read and for a write ({reason}: the
# failure's own line; {done}: "save this: nothing was changed …" or "show this page").
_SAVE = "save this: nothing was changed by the step that failed"
_SHOW = "show this page"
_PAGES = {
    DATA_HOME_FULL: ("The disk is full",
                     "The disk of the data home is full, so the console could not {done}. "
                     "Mail is not lost meanwhile: the core refuses new mail with 452 (senders "
                     "try again later) and keeps delivering its queue, which frees space. Free "
                     "some space on that disk, then {again}."),
    OUT_OF_SPACE: ("Out of disk space",
                   "The console ran out of disk space, so it could not {done} ({reason}). "
                   "Free some space on that disk, or raise the quota, then {again}."),
    LOCKED: ("The database is locked",
             "The database, mailmoat.db, is locked by another program (an sqlite3 session "
             "left inside a transaction, a VACUUM), so the console could not {done}. "
             "{Again} once that program is done."),
}
_READS = frozenset({"GET", "HEAD"})

# What is sent when errors.html cannot be drawn: no template, no layout, no URL.
_PLAIN_ERROR_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title} · Mailmoat</title></head>
<body>
<h1>{title}</h1>
<p>{text}</p>
<p>Request id: <code>{request_id}</code> (quote it when you report a problem; the console \
log has the details).</p>
</body>
</html>
"""
LOGGED_TEXT_MAX_CHARS = 200   # of a path or Host header in a log line or an event
# An answer that says the request broke HTTP itself (guide Table 3-2 "HTTP protocol
# violation"), whoever gives it: cheroot, for a request it could not read (console.serve),
# or the console. Not 408 (a client that went quiet), 500 or 503 (our side).
VIOLATION_STATUSES = frozenset({400, 405, 413, 414, 501, 505})
PLAIN_HTTP_ON_HTTPS = "plain HTTP sent to the HTTPS port"


def is_http_violation(status: int | str) -> bool:
    """`status`: a code, or a status line ("505 HTTP Version Not Supported")."""
    try:
        return int(str(status)[:3]) in VIOLATION_STATUSES
    except ValueError:
        return False


def https_url() -> str:
    """The current path on the HTTPS listener."""
    port = console_context().bound_ports.get("https") or settings()["https.port"]
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    return f"https://{host}:{port}{request.full_path.rstrip('?')}"


def logon_page(view: Callable) -> Callable:
    """Logon and password pages: only over HTTPS while `https.logons` is on. While HTTPS
    is off (no key and certificate load) they say so and how to get in, instead of sending
    the browser to a port nothing listens on; a password never goes over HTTP for it."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not request.is_secure and settings()["https.logons"]:
            if console_context().https_off:
                _log_error_answer(503, "HTTPS-only logons while HTTPS is off")
                return _error_page(503, "Logons need HTTPS, which is off", _HTTPS_OFF_TEXT)
            return redirect(https_url(), code=302 if request.method == "GET" else 307)
        return view(*args, **kwargs)
    return wrapper


_HTTPS_OFF_TEXT = ("Logons are accepted over HTTPS only (https.logons), and HTTPS is off "
                   "because the key and certificate in the data home's tls/ directory do not "
                   "load (the service_start_failed event says why). Repair them, or allow "
                   "logons over HTTP for now with: mailmoat config set https.logons false")


# A value an event's text quotes: Python's repr ('…', "…" when it holds a '), JSON's "…".
# An opening quote follows no letter or digit: the apostrophes of "it's" and "don't" in a
# quoted remote reply are not a pair (review19 r4 C3).
_QUOTED = re.compile(r"(?<!\w)'(?:[^'\\\n]|\\.)*'" r'|(?<!\w)"(?:[^"\\\n]|\\.)*"')
# A report detail `key=value` (shared/report_format.py detail_parts): the value is mail's.
_FACT = re.compile(r"([\w.]+)(=)(.+)", re.DOTALL)
# The facts whose values are addresses or file names: left to right (module rules).
_IDENTIFIER_FACTS = frozenset(("file", "matched_name", "files", "address", "sender",
                               "recipient", "recipients", "entry", "path"))


def isolated(value, fact: bool = False) -> Markup:
    """`value` escaped, bidi controls visible (`_finalize`), each quoted value in it that
    holds a right-to-left letter in a `<bdi>` of its own (module rules), quotes outside;
    with `fact`, the value of a `key=value` that quotes none is one (`subject=…`;
    `terms=["…", "…"]` has one each). A value without such a letter needs no isolate: the
    sentence around it is left to right. None is ""."""
    if value is None:
        return Markup("")
    text = visible_bidi(str(value))
    if not _has_right_to_left(text):
        return escape(text)
    ltr = False
    if fact and (match := _FACT.fullmatch(text)):
        ltr = match[1].rpartition(".")[2] in _IDENTIFIER_FACTS
        if not _QUOTED.search(match[3]):
            return escape(match[1] + match[2]) + _bdi(match[3], ltr)
    out, last = [], 0
    for match in _QUOTED.finditer(text):
        quoted = match.group()
        out += [escape(text[last:match.start()]), escape(quoted[0]), _bdi(quoted[1:-1], ltr),
                escape(quoted[-1])]
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


def identifiers(value, joiner: str = ", ") -> Markup:
    """An address or a file name, or a list of them joined by `joiner`, escaped with bidi
    controls visible, each holding a right-to-left letter a left-to-right isolate
    (`<bdi dir="ltr">`, module rules). None and "" are ""."""
    if value is None or isinstance(value, str):
        value = [value] if value else []
    return Markup(escape(joiner)).join(_bdi(visible_bidi(str(item)), ltr=True)
                                       for item in value)


def _has_right_to_left(text: str) -> bool:
    """A letter of a right-to-left script (Hebrew, Arabic, Syriac, Thaana, N'Ko…) in `text`."""
    return not text.isascii() and any(
        unicodedata.bidirectional(ch) in ("R", "AL") for ch in text)


def _bdi(text: str, ltr: bool = False) -> Markup:
    if not _has_right_to_left(text):
        return escape(text)
    return (Markup('<bdi dir="ltr">%s</bdi>') if ltr else Markup("<bdi>%s</bdi>")) % text


def _finalize(value):
    """Jinja's `finalize`: every plain string a template prints shows its bidi controls;
    Markup (form fields, charts) is left as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible_bidi(value)
    return value


class SchemeSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions with one cookie per scheme: HTTPS's is Secure and is
    the only one HTTPS reads; HTTP reads only its own (see the module rules)."""

    def get_cookie_name(self, app: Flask) -> str:
        return SECURE_SESSION_COOKIE if request.is_secure else super().get_cookie_name(app)

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure

    # What the `__Host-` prefix requires of HTTPS's cookie, whatever the app's config says
    # (a browser drops the cookie otherwise, and no logon over HTTPS would hold).
    def get_cookie_domain(self, app: Flask) -> str | None:
        return None if request.is_secure else super().get_cookie_domain(app)

    def get_cookie_path(self, app: Flask) -> str:
        return "/" if request.is_secure else super().get_cookie_path(app)


def _request_id() -> str:
    """This request's id; made here when the request failed before `before_request`."""
    if not g.get("request_id"):
        g.request_id = secrets.token_hex(6)
    return g.request_id


def _shown(text: str) -> str:
    """`text` as a log line may hold it: cut short and quoted, control characters escaped
    (a path with an encoded CR LF must not forge a line)."""
    return repr(text[:LOGGED_TEXT_MAX_CHARS])


def _has_bad_host() -> bool:
    """True when the request's Host header is no host name: one werkzeug's routing refused
    (an empty label, "a..b"), or one whose characters werkzeug's `request.host` quietly
    turns into "" ("a b", "evil.example/x", "ex_ample.com", "x:1@evil.example"), from which
    `https_url` built "https://:8043/…" (console18 B4)."""
    return isinstance(request.routing_exception, BadHost) \
        or ("Host" in request.headers and not request.host)


def _known_failure(exc: BaseException) -> KnownFailure | None:
    # the context only for what may be one: an error handler must not fail on a bug's
    # exception because the context cannot be had (module rules; review21e R3)
    if not (is_out_of_space(exc) or is_held_by_another(exc)):
        return None
    context = console_context()
    return known_failure(exc, context.home.root, context.disk_space)


def _error_page(code: int, title: str | None = None, text: str | None = None):
    default_title, default_text = _MESSAGES.get(code, _MESSAGES[500])
    title, text = title or default_title, text or default_text
    if not _has_bad_host():
        try:
            return render_template("errors.html", code=code, title=title, text=text,
                                   request_id=_request_id()), code
        except Exception as exc:
            # the layout reads the database too: a lock or a full disk it met has had its
            # line already (the request's own, or the 503's), and is no bug (module rules)
            if _known_failure(exc) is None:
                log.exception("request %s: the %s page could not be drawn; a plain one was "
                              "sent", _request_id(), code)
    page = _PLAIN_ERROR_PAGE.format(title=escape(title), text=escape(text),
                                    request_id=escape(_request_id()))
    return page, code, {"Content-Type": "text/html; charset=utf-8"}


class ForeignFormError(CSRFError):
    """A form posted over HTTPS whose Origin (or Referer) header names another address."""

    def __init__(self, header: str, sent_from: str, console: str):
        super().__init__(f"the {header} header names {sent_from}, not {console}")
        self.header, self.sent_from, self.console = header, sent_from, console


class FormProtection(CSRFProtect):
    """Flask-WTF's CSRF protection with the browser's own word on where a form came from
    checked as the module rules say, in place of its strict SSL Referer check."""

    def init_app(self, app: Flask) -> None:
        app.config["WTF_CSRF_SSL_STRICT"] = False
        super().init_app(app)

    def protect(self, apply_exemptions: bool = False) -> None:
        super().protect(apply_exemptions)
        if g.get("csrf_valid") and request.is_secure:
            _check_form_origin()


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str | None, int | None] | None:
    """(scheme, host, port) of `url`, the port filled in for its scheme; None when it has
    none to give."""
    try:
        parts = urlsplit(url)
        return parts.scheme, parts.hostname, parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:          # a port that is no port
        return None


def _check_form_origin() -> None:
    """ForeignFormError when the post's Origin, or without one its Referer, names another
    scheme, host or port than this request's own (module rules)."""
    header, value = "Origin", request.headers.get("Origin", "")
    if value in ("", "null"):   # "null": an origin the browser keeps to itself
        header, value = "Referer", request.headers.get("Referer", "")
    if not value:
        return
    console = f"https://{request.host}"
    if _origin(value) != _origin(console):
        try:
            parts = urlsplit(value)
            sent_from = f"{parts.scheme}://{parts.netloc}" if parts.scheme else value
        except ValueError:
            sent_from = value
        raise ForeignFormError(header, event_text(sent_from), console)


def _log_error_answer(code: int, reason: str) -> None:
    """The one log line of a request answered with an error page."""
    log.info("request %s: %s %s answered %s %s", _request_id(), request.method,
             _shown(request.path), code, reason)


def client_ip(address: str | None) -> str | None:
    """The client as events, reports and alerts name it: the console listens dual-stack, so
    an IPv4 client arrives as ::ffff:a.b.c.d; it is a.b.c.d, as the core names it."""
    if address and address.startswith("::ffff:"):
        try:
            mapped = ipaddress.IPv6Address(address).ipv4_mapped
        except ValueError:
            mapped = None
        if mapped is not None:
            return str(mapped)
    return address


def _ipv4_clients_as_ipv4(wsgi_app):
    def wrapped(environ, start_response):
        if environ.get("REMOTE_ADDR"):
            environ["REMOTE_ADDR"] = client_ip(environ["REMOTE_ADDR"])
        return wsgi_app(environ, start_response)
    return wrapped


def event_text(text: str) -> str:
    """`text` from a client (a path, an error that quotes its bytes) as an event stores it:
    at most LOGGED_TEXT_MAX_CHARS characters, "…" where it was cut, control characters
    escaped. The client decides how long it is: stored whole, a 60 KB path made two 60 KB
    copies per refused request and a 1 MB alert mail (authz finding 1)."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1]
                    for c in text[:LOGGED_TEXT_MAX_CHARS])
    return shown + "…" if len(text) > LOGGED_TEXT_MAX_CHARS else shown


def record_within_budget(context: ConsoleContext, budget: EventBudget, address: str | None,
                         action: Action, *, result: str, info: str,
                         data: dict | None = None) -> None:
    """Write the event `action` of the client at `address` while it has some of `budget`
    left (console.throttle): the last one written says that the next are not, the first
    after the pause how many were left out, in its info and in its data (`last_recorded`,
    `left_out`). `address` as the request has it; the event names it as `client_ip` does."""
    address = client_ip(address)
    allowance = budget.take(address, context.clock.now())
    if not allowance.record:
        return
    data = dict(data or {})
    if allowance.left_out:
        info += f" (after {allowance.left_out} more from this client, not recorded)"
        data["left_out"] = allowance.left_out
    if allowance.is_last:
        info += (f" (the last of {budget.events_per_client} recorded from this client within "
                 f"{budget.window_seconds // 60} minutes: the next ones are not recorded "
                 "until that time has passed since the first of them)")
        data["last_recorded"] = True
    context.events.record(action, result=result, client_ip=address, info=info,
                          data=data or None)


def record_http_violation(context: ConsoleContext, address: str | None, what: str) -> None:
    """The one place an HTTP protocol violation is recorded, whoever answered the request
    (cheroot before the console saw it: console.serve; the console itself: `install`): an
    http_protocol_violation event with the client and what was wrong, from which the core
    mails the "HTTP Protocol Violation" alert (guide Table 3-2) when it is on. A client
    writes at most VIOLATION_EVENTS_PER_CLIENT of them in VIOLATION_WINDOW_SECONDS
    (console.throttle.ViolationBudget). Never raises: it runs in cheroot's threads too."""
    try:
        # control characters escaped: cheroot's texts may quote the client's bytes
        record_within_budget(context, context.violations, address,
                             Action.HTTP_PROTOCOL_VIOLATION, result="rejected",
                             info=event_text(what))
    except Exception:   # a bug here must not cost the client its answer
        log.exception("cannot record an HTTP protocol violation")


def install(app: Flask) -> None:
    app.wsgi_app = _ipv4_clients_as_ipv4(app.wsgi_app)
    app.jinja_env.finalize = _finalize   # read when a template is compiled, i.e. later
    app.add_template_filter(isolated, "isolated")
    app.add_template_filter(identifiers, "identifiers")

    @app.before_request
    def assign_request_id():
        g.request_id = secrets.token_hex(6)

    @app.before_request
    def refuse_bad_host():
        # first after the id, so no session check or CSRF check meets a request that
        # cannot build a URL
        if isinstance(request.routing_exception, BadHost):
            raise request.routing_exception
        if _has_bad_host():
            raise BadHost()

    @app.before_request
    def refuse_files():
        # before CSRFProtect's check and every form (security.install runs first)
        if request.mimetype == "multipart/form-data" and request.files:
            _log_error_answer(400, "a form sent with a file; the console's forms take none")
            return _error_page(400, "Bad request", "The console's forms take text, not "
                               "files: paste the text into the field instead.")
        return None

    @app.after_request
    def add_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        if g.get("request_id"):
            response.headers["X-Request-Id"] = g.request_id
        return response

    @app.errorhandler(CSRFError)
    def csrf_failed(exc: CSRFError):
        from console.roles import refused_for_role
        # the role first: a report-only administrator's post to an administrator page is
        # its 403 and event, token or not (SPEC §7); nobody else's answer changes
        if refused_for_role():
            what = "a form from another address" if isinstance(exc, ForeignFormError) \
                else "no valid form token"
            _log_error_answer(403, f"Forbidden (and {what}: {exc.description})")
            return _error_page(403)
        if isinstance(exc, ForeignFormError):
            _log_error_answer(400, f"Form refused: {exc.description}")
            return _error_page(400, "Form refused", (
                f"The form was not accepted: your browser's {exc.header} header says it was "
                f"sent from {exc.sent_from}, but this console is {exc.console}. The console "
                "takes a form only from its own pages, so that another site cannot post one "
                f"in your name. Open the console at {exc.console}, reload the page and try "
                "again; behind a proxy, the proxy must pass the Host header on unchanged."))
        _log_error_answer(400, f"Form expired: {exc.description}")
        return _error_page(400, "Form expired", "The form was not accepted because its "
                           "security token was missing or out of date. Go back, reload the "
                           "page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code in (301, 302, 303, 307, 308):
            return exc
        reason = exc.name
        if isinstance(exc, BadHost):
            reason += (f": the Host header {_shown(request.headers.get('Host', ''))} is not "
                       "a host name")
        if is_http_violation(exc.code):
            record_http_violation(console_context(), request.remote_addr,
                                  f"{exc.code} {reason} ({request.method} "
                                  f"{_shown(request.path)})")
        _log_error_answer(exc.code or 500, reason)
        return _error_page(exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        known = _known_failure(exc)
        if known is not None:
            # no bug: one line for the administrator, no traceback (module rules)
            log.warning("request %s: %s %s answered 503: %s (%s)", _request_id(),
                        request.method, _shown(request.path), known.reason, exc)
            title, text = _PAGES[known.kind]
            reads = request.method in _READS
            again = "reload the page" if reads else "try again"
            return _error_page(503, title, text.format(
                done=_SHOW if reads else _SAVE, reason=known.reason, again=again,
                Again=again.capitalize()))
        log.exception("request %s failed: %s %s", _request_id(), request.method,
                      _shown(request.path))
        return _error_page(500)
