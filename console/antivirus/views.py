"""Antivirus Policy (SPEC §7; guide §4): settings, outbreak alert, virus quarantine.

Form -> one save -> flash -> redirect; administrator only. The virus quarantine is read
from the spool and downloaded as a password-protected archive; Delete and Send to central
quarantine again ask the core (service.py).
"""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for

from console.antivirus import bp, service
from console.antivirus.forms import VirusQuarantineForm
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


@bp.route("/quarantine")
@requires(Access.ADMIN)
def quarantine():
    total, messages = service.list_quarantine()
    return render_template("antivirus/quarantine.html", tabs=TABS, tab="quarantine",
                           total=total, messages=messages, form=VirusQuarantineForm(),
                           password=service.SAFE_ARCHIVE_PASSWORD,
                           mode=settings()["av.quarantine"])


@bp.route("/quarantine/delete", methods=["POST"])
@requires(Access.ADMIN)
def quarantine_delete():
    form = VirusQuarantineForm()
    if form.validate_on_submit():
        try:
            count = service.request_delete(form.ids.data or [], **who())
        except SettingError as exc:
            flash("Nothing was deleted: " + "; ".join(rule for _key, rule in exc.errors),
                  "error")
        else:
            flash(f"The core deletes the {count} selected message(s) within a few seconds.",
                  "info")
    return redirect(url_for("antivirus.quarantine"))


@bp.route("/quarantine/central-resend", methods=["POST"])
@requires(Access.ADMIN)
def quarantine_central_resend():
    form = VirusQuarantineForm()
    if form.validate_on_submit():
        try:
            count = service.request_central_resend(form.ids.data or [], **who())
        except SettingError as exc:
            flash("Nothing was sent again: " + "; ".join(rule for _key, rule in exc.errors),
                  "error")
        else:
            flash(f"The core sends the {count} selected message(s) to the central quarantine "
                  f"again within a few seconds.", "info")
    return redirect(url_for("antivirus.quarantine"))


@bp.route("/quarantine/<queue_id>/download")
@requires(Access.ADMIN)
def download(queue_id: str):
    data = service.safe_archive(queue_id)
    if data is None:
        abort(404)
    return Response(data, mimetype="application/x-7z-compressed", headers={
        "Content-Disposition": f'attachment; filename="virus-{queue_id}.7z"',
        "X-Content-Type-Options": "nosniff"})
