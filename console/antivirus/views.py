"""Antivirus Policy (SPEC §7; guide §4): settings, outbreak alert, virus quarantine.

Form -> one save -> flash -> redirect; administrator only. The virus quarantine is read
from the spool and downloaded as a password-protected archive; Delete and Send to central
quarantine again ask the core (service.py).
"""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for

from console.antivirus import bp, engine_check, service
from console.antivirus.forms import VirusQuarantineAllForm, VirusQuarantineForm
from console.context import settings
from console.form_submit import submit, who
from console.roles import Access, requires
from console.schema_forms import form_data, form_values, settings_form
from console.settings_service import save_settings
from console.status.service import definitions_in_force
from shared.settings import PAGES, SCHEMA, SettingError

TABS = (("antivirus", "Antivirus Settings", "antivirus.index"),
        ("outbreak", "Outbreak Alert", "antivirus.outbreak"),
        ("quarantine", "Virus Quarantine", "antivirus.quarantine"))
LABELS = {
    "av.enabled": "Enable virus scanning",
    "av.engine": "Scan engine",
    "av.clamd.address": "clamd address (host:port or socket path)",
    "av.heuristics": "Heuristic level",
    "av.on_virus": "When a virus is found",
    "av.on_unrepairable": "If a file cannot be repaired",
    "av.on_not_removed": "If an infected file is not removed",
    "av.deleted_text.enabled": "Add text when an infected attachment is deleted",
    "av.deleted_text": "Text",
    "av.mass_mailer_cleanup": "Drop mass-mailer messages (@m, @mm)",
    "av.quarantine": "Keep copies in the virus quarantine",
    "av.central_quarantine": "Central quarantine",
    "outbreak.enabled": "Send outbreak alerts",
    "outbreak.count": "Infected messages",
    "outbreak.minutes": "Within minutes",
    "outbreak.emails": "Alert recipients",
    "outbreak.subject": "Subject",
    "outbreak.body": "Message",
}


def _keys(page: str) -> list[str]:
    return [k for k, s in SCHEMA.items() if s.page == page]


FORMS = {page: settings_form(_keys(page), LABELS, name=f"av_{page}_form")
         for page in ("antivirus", "outbreak")}


def _settings_page(page: str):
    keys = _keys(page)
    form = FORMS[page](data=form_data(keys, settings()))
    errors = submit(form, lambda: save_settings(form_values(form, keys), page=page, **who()))
    if errors is None:
        if page == "antivirus":
            for warning in engine_check.save_warnings(settings()):
                flash(warning, "warning")
        return redirect(url_for(request.endpoint))
    return render_template("antivirus/settings.html", tabs=TABS, tab=page, form=form,
                           errors=errors, title=PAGES[page].split("› ")[-1],
                           definitions=definitions_in_force("virus"),
                           outbreak_without_recipients=bool(
                               settings()["outbreak.enabled"] and not settings()["outbreak.emails"]))


@bp.route("/", methods=["GET", "POST"])
@requires(Access.ADMIN)
def index():
    return _settings_page("antivirus")


@bp.route("/outbreak", methods=["GET", "POST"])
@requires(Access.ADMIN)
def outbreak():
    return _settings_page("outbreak")


def _query(central: str, page: int = 1) -> dict:
    """The list's query string for the filter `central` and page `page`, for links and
    redirects: an unknown filter and the first page are left out (the bare URL is the
    first page of every copy)."""
    return {**({"central": central} if central in service.CENTRAL_FILTERS and central else {}),
            **({"page": page} if page > 1 else {})}


def _listing() -> dict:
    """The list's filter and page as the query string gives them (a page that is no number:
    the first)."""
    return _query(request.args.get("central", ""), request.args.get("page", 1, type=int))


# What the page says when the core is asked, or nothing is: the same words for the selected
# copies and for every copy a filter selects.
_REFUSED = {"delete": "Nothing was deleted: ", "central_resend": "Nothing was sent again: "}


def _asked(action: str, count: int, *, is_selection: bool = False) -> str:
    which = f"{count} selected message(s)" if is_selection else f"{count} message(s)"
    if action == "delete":
        return f"The core deletes the {which} within a few seconds; they are no longer listed."
    return (f"The core sends the {which} to the central quarantine again within a few "
            f"seconds; until it has, they are listed as pending.")


def _back_to_list():
    return redirect(url_for("antivirus.quarantine", **_listing()))


@bp.route("/quarantine")
@requires(Access.ADMIN)
def quarantine():
    listing = service.list_quarantine(**_listing())
    query = _query(listing.central, listing.page)
    return render_template("antivirus/quarantine.html", tabs=TABS, tab="quarantine",
                           listing=listing, query=query, filters=service.CENTRAL_FILTERS,
                           page_size=service.PAGE_SIZE,
                           is_page_selected=request.args.get("select") == "page",
                           form=VirusQuarantineForm(),
                           all_form=VirusQuarantineAllForm(formdata=None,
                                                           central=listing.central),
                           password=service.SAFE_ARCHIVE_PASSWORD,
                           mode=settings()["av.quarantine"])


@bp.route("/quarantine/delete", methods=["POST"])
@requires(Access.ADMIN)
def quarantine_delete():
    """Delete the selected copies: the guide's "Are you sure?" as a page listing them, then
    (confirmed) the request for exactly those (service.py `selected_copies`)."""
    form = VirusQuarantineForm()
    if form.validate_on_submit():
        try:
            if not form.confirm.data:
                return _confirm_delete(form.ids.data or [])
            count = service.request_delete(form.ids.data or [], **who())
        except SettingError as exc:
            flash(_REFUSED["delete"] + "; ".join(rule for _key, rule in exc.errors), "error")
        else:
            flash(_asked("delete", count, is_selection=True), "info")
    return _back_to_list()


def _confirm_delete(ids: list[str]):
    """The confirmation of Delete for the selected copies still in the quarantine, or (none
    is) back to the list saying so."""
    copies = service.selected_copies(ids)
    if not copies:
        flash(_REFUSED["delete"] + "the selected messages are no longer in the virus "
                                   "quarantine.", "info")
        return _back_to_list()
    return render_template("antivirus/quarantine_delete_confirm.html", tabs=TABS,
                           tab="quarantine", form=VirusQuarantineForm(formdata=None),
                           copies=copies, gone=len({i.strip() for i in ids}) - len(copies),
                           query=_listing())


@bp.route("/quarantine/central-resend", methods=["POST"])
@requires(Access.ADMIN)
def quarantine_central_resend():
    form = VirusQuarantineForm()
    if form.validate_on_submit():
        try:
            count = service.request_central_resend(form.ids.data or [], **who())
        except SettingError as exc:
            flash(_REFUSED["central_resend"] + "; ".join(rule for _key, rule in exc.errors),
                  "error")
        else:
            flash(_asked("central_resend", count, is_selection=True), "info")
    return _back_to_list()


@bp.route("/quarantine/delete-all", methods=["POST"])
@requires(Access.ADMIN)
def quarantine_delete_all():
    """Delete every copy the filter selects: the confirmation, then (confirmed) the
    request."""
    return _on_all("delete")


@bp.route("/quarantine/central-resend-all", methods=["POST"])
@requires(Access.ADMIN)
def quarantine_central_resend_all():
    """Send every failed copy to the central quarantine again: the confirmation, then
    (confirmed) the request."""
    return _on_all("central_resend")


def _on_all(action: str):
    """The guide's "Are you sure?" as a page (no script), as the hold queue's: posted from
    the list, the confirmation naming how many copies and from when to when; posted from
    there with Yes, the request for exactly those copies, or (the filter selects others by
    then) the confirmation again, as things are now (service.py)."""
    form = VirusQuarantineAllForm()
    central = "failed" if action == "central_resend" else form.central.data or ""
    central = central if central in service.CENTRAL_FILTERS else ""
    back = redirect(url_for("antivirus.quarantine", **_query(central)))
    if not form.validate_on_submit():
        return back
    try:
        if action == "central_resend":
            service.require_central_quarantine()
        if not form.confirm.data:
            scope = service.bulk_scope(central)
        else:
            count = (service.request_delete_all(central, form.confirmed.data or "", **who())
                     if action == "delete" else
                     service.request_central_resend_all(form.confirmed.data or "", **who()))
            flash(_asked(action, count), "info")
            return back
    except service.ScopeChanged as exc:
        scope = exc.scope
        flash(_REFUSED[action] + "the messages changed since the confirmation was shown (one "
              "was kept, deleted or changed state). Here they are as they are now.", "warning")
    except SettingError as exc:
        flash(_REFUSED[action] + "; ".join(rule for _key, rule in exc.errors), "error")
        return back
    if not scope.count:
        flash(_REFUSED[action] + (f"there is no message {service.CENTRAL_FILTERS[central][1]}"
                                  if central else "the virus quarantine is empty"), "info")
        return back
    return render_template("antivirus/quarantine_confirm.html", tabs=TABS, tab="quarantine",
                           form=VirusQuarantineAllForm(formdata=None, central=central,
                                                       confirmed=scope.confirmed),
                           action=action, central=central, query=_query(central),
                           scope=scope, filters=service.CENTRAL_FILTERS,
                           host=settings()["av.central_quarantine"],
                           ids_per_command=service.IDS_PER_COMMAND,
                           requests=-(-scope.count // service.IDS_PER_COMMAND))


@bp.route("/quarantine/<queue_id>/download")
@requires(Access.ADMIN)
def download(queue_id: str):
    data = service.safe_archive(queue_id)
    if data is None:
        abort(404)
    return Response(data, mimetype="application/x-7z-compressed", headers={
        "Content-Disposition": f'attachment; filename="virus-{queue_id}.7z"',
        "X-Content-Type-Options": "nosniff"})
