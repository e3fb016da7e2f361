"""Reporting (guide ch. 7 "Generating reports", SPEC §7): Summary Report and Detail Report tabs.

Both roles have full access (report-only administrators exist for this page). "Generate
Report" posts the form and is redirected to the report's own URL (Post/Redirect/Get), so a
report can be bookmarked, paged and refreshed; "Write to CSV" answers the post with the file.

A bad From or To is said beside the picker it is about, which is marked invalid and takes the
focus, as on the settings pages (templates/_fields.html `field_row`; accessibility finding
C4); only messages about other fields go in the list above the form.
"""

from __future__ import annotations

import re

from flask import (Response, abort, redirect, render_template, request, stream_with_context,
                   url_for)

from console.context import console_context
from console.reporting import bp
from console.reporting.forms import DetailForm, SummaryForm
from console.reporting.service import (PAGE_ROWS, RangeError, csv_download,
                                       default_picker_values, detail_filter, detail_view,
                                       local_logging_notice, picker_value, report_range,
                                       summary_view)
from console.roles import Access, requires
from shared.report import ACTION_GROUPS, ACTION_LABELS

TABS = (("summary", "Summary Report"), ("detail", "Detail Report"))
# What a datetime-local picker shows; a report URL may hold any form report_range reads
_PICKER_VALUE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?")
_FORMS = {"summary": SummaryForm, "detail": DetailForm}


def _query(form) -> dict:
    """The report's URL parameters from a validated form."""
    args = {"start": form.start.data or "", "end": form.end.data or ""}
    if isinstance(form, DetailForm):
        args["actions"] = list(form.actions.data or [])
        args["search"] = form.search.data or ""
        if form.without_whitelisted.data:     # only when on: url_for writes False as
            args["without_whitelisted"] = "y"  # "False", which a BooleanField reads as on
    return args


def _beside_pickers(form, message: str) -> list[str]:
    """Put a message about From, To or both (service.report_range says which with the
    pickers' labels: "From: …", "To: …", "From/To: …") beside them; returns it, for the list
    above the form, when it names neither."""
    label, has_label, rule = message.partition(": ")
    pickers = [f for f in (form.start, form.end)
               if has_label and f.label.text in label.split("/")]
    for picker in pickers:
        picker.errors = [*picker.errors, rule]
    return [] if pickers else [message]


def _show_in_pickers(form, rng) -> None:
    """A From or To the pickers cannot show (a date alone, a time with its offset: the
    forms a URL may hold) is put in them as the time the report used, so that Generate
    Report again runs the same range (console18 C3: the pickers were left empty)."""
    for picker, unix in ((form.start, rng.start), (form.end, rng.end)):
        if picker.data and not _PICKER_VALUE.fullmatch(picker.data):
            picker.data = picker_value(unix)


def _page(tab: str, form, *, errors=(), status: int = 200):
    """Render a tab; with a range in the query string, the report too."""
    context = {"tab": tab, "tabs": TABS, "form": form, "errors": list(errors),
               "notice": local_logging_notice(), "groups": ACTION_GROUPS,
               "labels": ACTION_LABELS, "report": None}
    if not form.start.data and not form.end.data:
        form.start.data, form.end.data = default_picker_values(console_context().clock.now())
    if "generated" in request.args and not errors:
        try:
            rng = report_range(form.start.data, form.end.data)
            _show_in_pickers(form, rng)
            if tab == "summary":
                context["report"] = summary_view(rng)
            else:
                flt = detail_filter(rng, form.actions.data or [], form.search.data,
                                    form.without_whitelisted.data)
                first = request.args.get("n", "1")
                context["report"] = detail_view(
                    flt, after=request.args.get("after"), before=request.args.get("before"),
                    first_number=int(first) if first.isascii() and first.isdigit() else 1)
                context["query"] = {**_query(form), "generated": 1}
            context["range_label"] = rng.label()
        except (RangeError, ValueError) as exc:
            context["errors"] = _beside_pickers(form, str(exc))
            status = 400
    return render_template(f"reporting/{tab}.html", page_rows=PAGE_ROWS, **context), status


@bp.route("/")
@requires(Access.REPORTS)
def index():
    """The left pane's entry: the Summary Report tab."""
    return _page("summary", SummaryForm(formdata=request.args))


@bp.route("/<any(summary, detail):tab>", methods=["GET"])
@requires(Access.REPORTS)
def report(tab: str):
    form = _FORMS[tab](formdata=request.args)
    return _page(tab, form)


@bp.route("/<any(summary, detail):tab>", methods=["POST"])
@requires(Access.REPORTS)
def submit(tab: str):
    form = _FORMS[tab]()
    if not form.validate():
        # the pickers show their own errors (`_beside_pickers`)
        errors = [f"{getattr(form, name).label.text}: {message}"
                  for name, messages in form.errors.items()
                  if name not in ("csrf_token", "start", "end")
                  for message in messages]
        if "csrf_token" in form.errors:
            abort(400)
        return _page(tab, form, errors=errors, status=400)
    if not form.write_csv.data:
        return redirect(url_for("reporting.report", tab=tab, generated=1, **_query(form)))
    try:
        rng = report_range(form.start.data, form.end.data)
        flt = detail_filter(rng, form.actions.data or [], form.search.data,
                            form.without_whitelisted.data) if tab == "detail" else None
    except (RangeError, ValueError) as exc:
        return _page(tab, form, errors=_beside_pickers(form, str(exc)), status=400)
    name, stream = csv_download(tab, rng, flt)
    return Response(stream_with_context(stream), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})
