"""Configuration tabs: form → one service call → flash → redirect (Post/Redirect/Get).

A refused save re-renders the tab with the schema's message next to the field and changes
nothing. Administrator only.
"""

from __future__ import annotations

import json

from flask import abort, flash, redirect, render_template, request, url_for

from console import certs
from console.auth.service import keep_session_after_password_change
from console.configuration import bp, service
from console.configuration.forms import (
    ACCOUNT_KEYS, SETTINGS_FORMS, TABS, AccountSettingsForm, AdminPasswordForm,
    DefaultRouteForm, DeleteRouteForm, HoldConfirmForm, HoldSelectionForm, InstallForm,
    ReportPasswordForm, RequestForm, RoutingEntryForm, SelfSignedForm, page_keys)
from console.context import console_context, settings
from console.form_submit import submit, who
from console.roles import Access, requires
from console.schema_forms import attach_errors, form_data, form_values
from console.security import logon_page
from shared.commands import HOLD_ACTIONS
from shared.settings import NOT_BUILT_FEATURES, PAGES, SettingError

# A tab that edits settings of a feature not built yet says so above its form, as the pages
# of such features do (console/templates/placeholder.html): docs finding B1.
NOTICES = {
    "logging": f"{NOT_BUILT_FEATURES['siem']}. It arrives with the SIEM forwarding issue; "
               "local logging and retention work as set.",
}


def _render(template: str, tab: str, **context):
    return render_template(f"configuration/{template}", tabs=TABS, tab=tab,
                           warnings=service.page_warnings(tab), **context)


@bp.route("/")
@requires(Access.ADMIN)
def index():
    return redirect(url_for("configuration.accounts"))


# --- Accounts ------------------------------------------------------------------------------

def _account_forms(**override):
    forms = {
        "admin": AdminPasswordForm(prefix="admin"),
        "report": ReportPasswordForm(prefix="report"),
        "settings": AccountSettingsForm(prefix="settings",
                                        data=form_data(ACCOUNT_KEYS, settings())),
    }
    forms.update(override)
    return forms


@bp.route("/accounts", methods=["GET"])
@requires(Access.ADMIN)
@logon_page
def accounts():
    return _render("accounts.html", "accounts", forms=_account_forms(), errors=[])


@bp.route("/accounts/password/<account>", methods=["POST"])
@requires(Access.ADMIN)
@logon_page
def change_password(account: str):
    if account not in ("admin", "report"):
        abort(404)
    key = "admin.password" if account == "admin" else "admin.report_only.password"
    form = (AdminPasswordForm if account == "admin" else ReportPasswordForm)(prefix=account)
    errors: list[str] = []
    if form.validate_on_submit():
        try:
            service.save_page("accounts", {key: form.new_password.data}, **who())
        except SettingError as exc:
            errors = attach_errors(form, exc.errors, {key: "new_password"})
        else:
            keep_session_after_password_change(account)
            flash("The administrator password was changed." if account == "admin" else
                  "The report-only administrator password was changed.", "info")
            return redirect(url_for("configuration.accounts"))
    return _render("accounts.html", "accounts", forms=_account_forms(**{account: form}),
                   errors=errors)


@bp.route("/accounts", methods=["POST"])
@requires(Access.ADMIN)
@logon_page
def save_accounts():
    form = AccountSettingsForm(prefix="settings")
    errors: list[str] = []
    if form.validate_on_submit():
        try:
            service.save_page("accounts", form_values(form, ACCOUNT_KEYS), **who())
        except SettingError as exc:
            errors = attach_errors(form, exc)
        else:
            flash("Changes saved.", "info")
            return redirect(url_for("configuration.accounts"))
    return _render("accounts.html", "accounts", forms=_account_forms(settings=form),
                   errors=errors)


# --- Setup, Scan Policy, Alerts, Notifications, Logging, Diagnostics -------------------------

@requires(Access.ADMIN)
def settings_tab(page: str):
    keys = page_keys(page)
    form = SETTINGS_FORMS[page](data=form_data(keys, settings()))
    errors = submit(form, lambda: service.save_page(page, form_values(form, keys), **who()))
    if errors is None:
        return redirect(url_for(request.endpoint))
    return _render("settings.html", page, form=form, title=PAGES[page].split("› ")[-1],
                   errors=errors, notice=NOTICES.get(page),
                   diagnostics=service.diagnostics_folder() if page == "diagnostics" else None)


for _page, _url in (("setup", "/setup"), ("scan_policy", "/scan-policy"),
                    ("alerts", "/alerts"), ("notifications", "/notifications"),
                    ("logging", "/logging"), ("diagnostics", "/diagnostics")):
    bp.add_url_rule(_url, _page, settings_tab, methods=["GET", "POST"],
                    defaults={"page": _page})


# --- Hold Queue ----------------------------------------------------------------------------

@bp.route("/hold", methods=["GET"])
@requires(Access.ADMIN)
def hold():
    return _render("hold.html", "hold", listing=service.list_hold(),
                   form=HoldSelectionForm(), last_request=service.last_hold_request(),
                   core_running=service.core_running())


@bp.route("/hold/confirm", methods=["POST"])
@requires(Access.ADMIN)
def hold_confirm():
    """The guide's "Are you sure?" window, as a page (no script needed)."""
    selection = HoldSelectionForm()
    if not selection.validate_on_submit():
        return redirect(url_for("configuration.hold"))
    action = next((a for a in HOLD_ACTIONS if selection[a].data), None)
    if action is None:
        return redirect(url_for("configuration.hold"))
    try:
        # read as the action will read it, so that the question counts what is acted on
        ids = service.hold_selection(",".join(selection.ids.data or []))
    except SettingError as exc:
        return _hold_refused(exc)
    listing = service.list_hold()
    everything = not ids
    if everything:
        if not listing.total:            # not "Drop all 0 message(s)?"
            flash(f"The hold queue is empty: there is nothing to {action}.", "info")
            return redirect(url_for("configuration.hold"))
        # named, not "all": a message held after this question is not acted on unseen
        # (tester28c B1)
        ids = list(listing.queue_ids[:service.HOLD_ACTION_LIMIT])
    scope = "all" if everything else "selected"
    form = HoldConfirmForm(formdata=None, action=action, ids=",".join(ids), scope=scope)
    return _render("hold_confirm.html", "hold", form=form, action=action,
                   what=_hold_what(scope, ids, listing), errors=[])


def _hold_what(scope: str, ids: list[str], listing) -> str:
    """What the confirmation asks about: the selection, or, with none, the messages it names
    measured against the hold queue as it is now (review28d R1, R2)."""
    if scope != "all":
        return f"the {len(ids)} selected message(s)"
    now = set(listing.queue_ids)
    if set(ids) == now:
        return f"all {len(ids)} message(s) in the hold queue"
    if len(ids) == service.HOLD_ACTION_LIMIT and set(ids) <= now:
        return (f"the oldest {len(ids)} of the {listing.total} message(s) in the hold queue "
                f"(the rest another time)")
    return (f"the {len(ids)} message(s) that were in the hold queue when this question was "
            f"first shown ({len(now & set(ids))} of them still are; {listing.total} in it now)")


def _hold_refused(exc: SettingError):
    """Back to the hold queue, saying why a selection was refused (no queue id in it):
    Post/Redirect/Get, so that reloading the page does not post the selection again."""
    flash(f"Nothing was done: {exc.errors[0][1]}.", "error")
    return redirect(url_for("configuration.hold"))


@bp.route("/hold/action", methods=["POST"])
@requires(Access.ADMIN)
def hold_action():
    form = HoldConfirmForm()
    try:
        ids = service.confirmed_selection(form.ids.data or "")
    except SettingError as exc:
        return _hold_refused(exc)
    errors: list[str] = []
    if form.validate_on_submit():
        try:
            service.request_hold_action(form.action.data, form.ids.data or "",
                                        form.address.data or "", form.subject.data or "",
                                        **who())
        except SettingError as exc:
            errors = attach_errors(form, exc.errors, {"address": "address",
                                                      "subject": "subject"})
        else:
            if service.core_running():
                flash("The request was passed to the core, which carries it out within a few "
                      "seconds: the last request's result is below.", "info")
            else:
                flash("The core is not running: the request waits, and the core carries it "
                      "out when it starts, on the messages named that are still in the hold "
                      "queue then.", "warning")
            return redirect(url_for("configuration.hold"))
    return _render("hold_confirm.html", "hold", form=form, action=form.action.data,
                   what=_hold_what(form.scope.data, ids, service.list_hold()), errors=errors)


# --- Routing -------------------------------------------------------------------------------

def _routing_page(add_form=None, default_form=None, errors=()):
    values = settings()
    return _render("routing.html", "routing", routes=values["routing.local"],
                   add_form=add_form or RoutingEntryForm(prefix="add"),
                   default_form=default_form or DefaultRouteForm(
                       prefix="default", data=form_data(["routing.default"], values)),
                   delete_form=DeleteRouteForm(), errors=list(errors))


@bp.route("/routing", methods=["GET"])
@requires(Access.ADMIN)
def routing():
    return _routing_page()


@bp.route("/routing/local", methods=["POST"])
@requires(Access.ADMIN)
def add_route():
    form = RoutingEntryForm(prefix="add")
    if form.validate_on_submit():
        try:
            entry = service.add_route(form.match.data or "", form.relay.data or "",
                                      form.port.data or "", **who())
        except SettingError as exc:
            return _routing_page(add_form=form, errors=attach_errors(form, exc.errors))
        flash(f"{entry['match']} was added to the local routing list.", "info")
        return redirect(url_for("configuration.routing"))
    return _routing_page(add_form=form)


@bp.route("/routing/local/<int:index>", methods=["GET", "POST"])
@requires(Access.ADMIN)
def edit_route(index: int):
    routes = settings()["routing.local"]
    if not 0 <= index < len(routes):
        abort(404)
    entry = routes[index]
    form = RoutingEntryForm(data={"match": entry["match"], "relay": entry.get("relay", ""),
                                  "port": str(entry.get("port", 25)),
                                  "original": entry["match"]})
    errors: list[str] = []
    if form.validate_on_submit():
        try:
            service.update_route(index, form.original.data or "", form.match.data or "",
                                 form.relay.data or "", form.port.data or "", **who())
        except SettingError as exc:
            errors = attach_errors(form, exc.errors)
        else:
            flash("The routing entry was saved.", "info")
            return redirect(url_for("configuration.routing"))
    return _render("routing_edit.html", "routing", form=form, index=index, errors=errors)


@bp.route("/routing/local/<int:index>/delete", methods=["POST"])
@requires(Access.ADMIN)
def delete_route(index: int):
    """Delete a local routing entry: the guide's "Are you sure?" as a page naming it, then
    (confirmed) the removal of exactly the entry it named, or of nothing when the entry was
    changed meanwhile (service.delete_route)."""
    form = DeleteRouteForm()
    if form.validate_on_submit():
        try:
            if not form.confirm.data:
                entry = service.route_at(index, form.original.data or "")
                return _render("routing_delete.html", "routing", entry=entry, index=index,
                               after=service.route_after_delete(index),
                               form=DeleteRouteForm(formdata=None, original=entry["match"],
                                                    shown=json.dumps(entry, sort_keys=True)))
            removed = service.delete_route(index, form.original.data or "",
                                           _shown_entry(form.shown.data), **who())
        except SettingError as exc:
            for _key, rule in exc.errors:
                flash(rule, "error")
        else:
            flash(f"{removed['match']} was removed from the local routing list.", "info")
    return redirect(url_for("configuration.routing"))


def _shown_entry(text: str | None) -> dict:
    """The entry a confirmation showed ({} when it is not one: then no entry matches)."""
    try:
        entry = json.loads(text or "")
    except ValueError:
        return {}
    return entry if isinstance(entry, dict) else {}


@bp.route("/routing/default", methods=["POST"])
@requires(Access.ADMIN)
def save_default_route():
    form = DefaultRouteForm(prefix="default")
    if form.validate_on_submit():
        try:
            service.save_page("routing", form_values(form, ["routing.default"]), **who())
        except SettingError as exc:
            return _routing_page(default_form=form, errors=attach_errors(form, exc))
        flash("Default routing saved.", "info")
        return redirect(url_for("configuration.routing"))
    return _routing_page(default_form=form)


# --- Certificate Management (reached from Setup) -------------------------------------------

def _certificates_page(request_form=None, install_form=None, self_signed_form=None):
    context = console_context()
    status = certs.certificate_status(context.home, context.clock.now())
    return _render("certificates.html", "setup", status=status,
                   request_form=request_form or RequestForm(prefix="request"),
                   install_form=install_form or InstallForm(prefix="install"),
                   self_signed_form=self_signed_form or SelfSignedForm(prefix="self")), 200


@bp.route("/setup/certificates", methods=["GET"])
@requires(Access.ADMIN)
def certificates():
    return _certificates_page()


@bp.route("/setup/certificates/request", methods=["POST"])
@requires(Access.ADMIN)
def certificate_request():
    form = RequestForm(prefix="request")
    if form.validate_on_submit():
        fields = certs.RequestFields(**{name: form[name].data or "" for name in (
            "common_name", "organization", "unit", "city", "state", "country", "email")})
        try:
            service.create_certificate_request(fields, **who())
        except SettingError as exc:
            attach_errors(form, exc.errors)
            return _certificates_page(request_form=form)
        flash("Certificate request created. Copy it, including the BEGIN and END lines, "
              "and submit it to your Certificate Authority.", "info")
        return redirect(url_for("configuration.certificates") + "#request-pem")
    return _certificates_page(request_form=form)


@bp.route("/setup/certificates/install", methods=["POST"])
@requires(Access.ADMIN)
def certificate_install():
    form = InstallForm(prefix="install")
    if form.validate_on_submit():
        try:
            changed = service.install_ca_certificate(form.certificate.data, **who())
        except SettingError as exc:
            attach_errors(form, exc.errors)
            return _certificates_page(install_form=form)
        flash("Certificate installed. The console's HTTPS and the SMTP STARTTLS use it within "
              "a few seconds, without a restart."
              if changed else "This certificate is already installed; nothing changed.", "info")
        return redirect(url_for("configuration.certificates"))
    return _certificates_page(install_form=form)


@bp.route("/setup/certificates/self-signed", methods=["POST"])
@requires(Access.ADMIN)
def certificate_self_signed():
    form = SelfSignedForm(prefix="self")
    if form.validate_on_submit():
        try:
            service.install_self_signed_certificate(form.common_name.data, **who())
        except SettingError as exc:
            attach_errors(form, exc.errors)
            return _certificates_page(self_signed_form=form)
        flash("Self-signed certificate installed. Browsers will warn about it until a "
              "CA-signed certificate is installed.", "info")
        return redirect(url_for("configuration.certificates"))
    return _certificates_page(self_signed_form=form)
