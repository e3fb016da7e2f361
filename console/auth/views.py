"""Logon and logoff pages. With `https.logons` on, the logon page is served over HTTPS only.

A client locked out after too many failed logons (console.throttle) gets the logon page with
the reason, HTTP 429 Too Many Requests and Retry-After; for an IPv6 client the page names the
/64 it was counted by.

A logon form refused for its fields (empty, or over the form's length) is not checked as a
logon, but it is a failed logon attempt: the page says what is wrong, and `log_on` writes
its `logon` failure event (console.md: every attempt writes one) and counts it in the
throttle, so such posts cannot write events at wire speed either (console review C1).

Why a logon failed is not a flash (a role=status note already in the page when it loads,
which screen readers do not read): the page's own role=alert says it, ties it to the
fields it is about and puts the focus on the field to correct (auth/logon.html;
accessibility finding C3).

Over plain HTTP while `https.logons` is off, the page says in one sentence that the password
crosses the network unencrypted, with the same page's address on the HTTPS listener
(console.security.https_url), or that HTTPS is off: the default lets a first logon over HTTP,
and nothing else on the way told the administrator that a switch was there.
"""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from console.auth import bp
from console.auth.forms import LogoffForm, LogonForm
from console.auth.service import LogonsLockedOut, log_off, log_on, safe_next, unsaved_notice
from console.context import console_context
from console.roles import Access, public, requires
from console.security import https_url, logon_page
from console.throttle import ClientBusy


@bp.route("/logon", methods=["GET", "POST"])
@public
@logon_page
def logon():
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(request.args.get("next")))
    form = LogonForm(next=request.args.get("next", ""),
                     unsaved="1" if request.args.get("unsaved") == "1" else "")
    if not form.is_submitted():
        return _page(form)
    fields_ok = form.validate()
    try:
        # a form refused for its fields is a failed logon too: counted and throttled
        if log_on(form.username.data or "", form.password.data if fields_ok else None):
            target = safe_next(form.next.data)
            if form.unsaved.data == "1":    # a form posted after the session ended
                flash(f"{unsaved_notice(target)} Make it again.", "warning")
            return redirect(target)
    except ClientBusy:
        return _refused(form, "Another logon from your address is being checked. Try again "
                              "in a moment.", 429, {"Retry-After": "2"})
    except LogonsLockedOut as locked:
        # an IPv6 client is counted by its /64 (console.throttle), which is usually a
        # whole network segment: the page must not promise that the rest of it gets in
        where, others = ((f"your network ({locked.client_key})", "Computers outside it")
                         if locked.is_network
                         else ("your computer's address", "Other computers"))
        return _refused(form, f"Too many failed logons from {where}: logons from it are "
                              f"refused for {locked.minutes} more minute(s). {others} can "
                              "still log on.", 429,
                        {"Retry-After": str(int(locked.seconds) + 1)})
    if not fields_ok:               # each message beside its field (auth/logon.html)
        return _page(form), 200
    return _refused(form, "The user name or password is incorrect.", 200, {},
                    is_credentials=True)


def _refused(form, message: str, status: int, headers: dict, *, is_credentials=False):
    """The logon page saying why the logon was refused; `is_credentials`: because the user
    name and password do not match, so both fields are marked."""
    return _page(form, refusal=message, is_credentials=is_credentials), status, headers


def _page(form, **context) -> str:
    """The logon page; over plain HTTP it carries the HTTPS address to log on at instead
    (`https_logon_url`; "" while HTTPS is off), see the module header."""
    if not request.is_secure:
        # with https.logons on, console.security.logon_page never lets plain HTTP get here
        context["https_logon_url"] = "" if console_context().https_off else https_url()
    return render_template("auth/logon.html", form=form, **context)


@bp.route("/logoff", methods=["POST"])
@requires(Access.REPORTS)
def logoff():
    if LogoffForm().validate_on_submit():
        log_off(current_user)
        flash("You have logged off.", "info")
    return redirect(url_for("auth.logon"))
