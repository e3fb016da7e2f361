"""Filtering Policy (guide §6): Content, Container Limits, Encrypted Container, Anti-Relay,
Content Rules — form → one service call → flash → redirect (Post/Redirect/Get).
A refused save re-renders the page with the schema's message and changes nothing.
Administrator only."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from console.context import settings
from console.filtering import bp, service
from console.filtering.forms import PAGE_FORMS, PAGE_KEYS, TABS, DeleteRuleForm, RuleForm
from console.form_submit import submit, who
from console.roles import Access, requires
from console.rule_terms import RULE_TEXTS, join_terms, rule_from_form
from console.schema_forms import attach_errors, form_data, form_values
from console.settings_service import rule_form_errors
from shared.settings import SettingError

TITLES = {page: title for page, title, _ in TABS}



@bp.context_processor
def _rule_texts():
    """The rule texts the templates write (console/rule_terms.py RULE_TEXTS)."""
    return {"rule_texts": RULE_TEXTS}


def _render(template: str, page: str, **context):
    return render_template(f"filtering/{template}", tabs=TABS, tab=page, title=TITLES[page],
                           warnings=service.page_warnings(page), **context)


@bp.route("/")
@requires(Access.ADMIN)
def index():
    return redirect(url_for("filtering.content"))


@requires(Access.ADMIN)
def settings_page(page: str):
    keys = PAGE_KEYS[page]
    form = PAGE_FORMS[page](data=form_data(keys, settings()))
    errors = submit(form, lambda: service.save_page(page, form_values(form, keys), **who()))
    if errors is None:
        return redirect(url_for(request.endpoint))
    if page == "content_rules":
        return _render("content_rules.html", page, form=form, errors=errors,
                       rules=_rules(), add_form=RuleForm(prefix="add"))
    return _render("settings.html", page, form=form, errors=errors)


for _page, _url in (("content", "/content"), ("container", "/container-limits"),
                    ("encrypted", "/encrypted-container"), ("relay", "/anti-relay"),
                    ("content_rules", "/content-rules")):
    bp.add_url_rule(_url, _page, settings_page, methods=["GET", "POST"],
                    defaults={"page": _page})


def _rules():
    """(index, rule, its terms lines as the edit page shows them, its delete form)."""
    return [(i, rule, (join_terms(rule["terms"]), join_terms(rule["none_of"])),
             DeleteRuleForm(prefix=f"del{i}", original=service.rule_key(rule)))
            for i, rule in enumerate(settings()["rules.content"])]


def _rule_values(form: RuleForm) -> dict:
    return rule_from_form(form.enabled.data, form.name.data, form.match.data, form.terms.data,
                          form.none_of.data, stored=settings()["rules.content"])


def _rule_errors(form: RuleForm, exc: SettingError, index: int | None) -> list[str]:
    return attach_errors(form, rule_form_errors(exc, "rules.content", index, form.terms.data,
                                                form.none_of.data))


@bp.route("/content-rules/add", methods=["POST"])
@requires(Access.ADMIN)
def add_rule():
    form = RuleForm(prefix="add")
    errors: list[str] = []
    if form.validate_on_submit():
        try:
            service.add_rule(_rule_values(form), **who())
        except SettingError as exc:
            errors = _rule_errors(form, exc, None)
        else:
            flash("Content rule added.", "info")
            return redirect(url_for("filtering.content_rules"))
    keys = PAGE_KEYS["content_rules"]
    return _render("content_rules.html", "content_rules", errors=errors, rules=_rules(),
                   form=PAGE_FORMS["content_rules"](data=form_data(keys, settings())),
                   add_form=form)


@bp.route("/content-rules/<int:index>", methods=["GET", "POST"])
@requires(Access.ADMIN)
def edit_rule(index: int):
    rules = settings()["rules.content"]
    if not 0 <= index < len(rules):
        abort(404)
    rule = rules[index]
    form = RuleForm(prefix="edit", data={
        "enabled": rule.get("enabled", True), "name": rule.get("name", ""),
        "match": rule.get("match", "any"), "terms": join_terms(rule.get("terms", [])),
        "none_of": join_terms(rule.get("none_of", [])),
        "original": service.rule_key(rule)})
    errors: list[str] = []
    if request.method == "POST" and form.validate_on_submit():
        try:
            changed = service.update_rule(index, form.original.data or "", _rule_values(form),
                                          **who())
        except SettingError as exc:
            errors = _rule_errors(form, exc, index)
        else:
            flash("Content rule saved." if changed else "No changes to save.", "info")
            return redirect(url_for("filtering.content_rules"))
    return _render("rule_edit.html", "content_rules", rule_form=form, index=index,
                   errors=errors)


@bp.route("/content-rules/<int:index>/delete", methods=["POST"])
@requires(Access.ADMIN)
def delete_rule(index: int):
    form = DeleteRuleForm(prefix=f"del{index}")
    if form.validate_on_submit():
        try:
            service.delete_rule(index, form.original.data or "", **who())
        except SettingError as exc:
            flash("; ".join(rule for _key, rule in exc.errors), "error")
        else:
            flash("Content rule deleted.", "info")
    return redirect(url_for("filtering.content_rules"))
