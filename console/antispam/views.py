"""Anti-spam Policy pages (SPEC §7; guide §5): Whitelist, Auto-generated Whitelist, Real-time
Blacklists, Custom Blacklist, Heuristic Engine, Spam Rules (Premium AntiSpam comes with its own
issue). Form -> one service call -> flash -> redirect; a refused save re-renders the page with
the schema's messages and changes nothing. Administrator only.
"""

from __future__ import annotations

import re

from flask import abort, flash, redirect, render_template, request, url_for

from console.antispam import bp, service
from console.antispam.forms import (PAGE_KEYS, RBL_ZONE_ROWS, SETTINGS_FORMS, TABS, AutoListForm,
                                    DeleteRuleForm, RblForm, SpamRuleForm)
from console.context import settings
from console.placeholders import settings_sections
from console.form_submit import submit, who
from console.roles import Access, requires
from console.rule_terms import RULE_TEXTS, join_terms, rule_from_form
from console.schema_forms import attach_errors, form_data, form_values
from console.settings_service import RuleListChanged, rule_form_errors, rule_key, save_settings
from shared.settings import SCHEMA, SENSITIVITY_THRESHOLDS, SettingError
from shared.settings_types import RuleError

PREMIUM_NOTICE = ("Premium AntiSpam (reputation lists, URL and signature filtering, language "
                  "identification) and the spam quarantine arrive with their own issue. The "
                  "settings in force are listed below.")

# A spam-rule edit refused because the rule list changed after the page was loaded
# (settings_service.RULE_LIST_CHANGED); the page then shows the rules as they now are.
STALE_RULE = ("the rule list changed meanwhile (in another tab or by another administrator). "
              "The rules below are as they are now; copy what you typed from here into the "
              "rule it belongs to and save it there.")

# What an auto-generated whitelist action did to the entries it counts
AUTO_DONE = {"to_custom": "added to the custom whitelist",
             "to_exclusions": "added to the exclusion list", "delete": "deleted"}
# a moved entry the target list holds or covers already: not added, and gone from this list
AUTO_COVERED = {"to_custom": "on the custom whitelist already (an entry for it or a wildcard "
                             "covering it), so not added again; gone from this list",
                "to_exclusions": "covered by the exclusion list already (it or a parent "
                                 "domain), so not added again; gone from this list"}
# A Delete of entries the auto-generated whitelist no longer holds (a stale page: another tab
# moved or deleted them, or the core evicted them)
NOTHING_DELETED = ("Nothing was deleted: the selected entries are no longer in the "
                   "auto-generated whitelist.")

# A stored rule this release's rules refuse (an older release stored it), and what a save of
# another rule says of it: every save of the list is refused until it is corrected or deleted.
STORED_REFUSED = ("This rule, as stored, breaks a rule of this release, so no change of the "
                  "spam rules can be saved: correct it and save it, or delete it.")
REFUSED_ELSEWHERE = "Rule {number} must be corrected or deleted first: see its message."

# The field prefixes of the Spam Rules page's forms: "new" or r<i> (save), d<i> (delete)
SAVE_PREFIX = re.compile(r"new|r[0-9]+")
DELETE_PREFIX = re.compile(r"d[0-9]+")


@bp.context_processor
def _rule_texts():
    """The rule texts the templates write (console/rule_terms.py RULE_TEXTS)."""
    return {"rule_texts": RULE_TEXTS}


def _render(template: str, tab: str, **context):
    return render_template(f"antispam/{template}", tabs=TABS, tab=tab,
                           title=dict((t, n) for t, n, _ in TABS)[tab], **context)


@bp.route("/")
@requires(Access.ADMIN)
def index():
    return redirect(url_for("antispam.whitelist"))


# what a page warns of in the stored settings, above its form
_PAGE_WARNINGS = {"heuristic": service.below_spam_score, "whitelist": service.whole_domains,
                  "blacklist": service.blacklisted_whole_domains}


@requires(Access.ADMIN)
def settings_page(page: str):
    keys = PAGE_KEYS[page]
    form = SETTINGS_FORMS[page](data=form_data(keys, settings()))
    errors = submit(form, lambda: save_settings(form_values(form, keys), page=page, **who()))
    if errors is None:
        return redirect(url_for(request.endpoint))
    return _render("settings.html", page, form=form, errors=errors,
                   warnings=_PAGE_WARNINGS.get(page, lambda _values: [])(settings()),
                   sensitivity_scores=SENSITIVITY_THRESHOLDS.items())


for _page, _url in (("whitelist", "/whitelist"), ("blacklist", "/blacklist"),
                    ("heuristic", "/heuristic")):
    bp.add_url_rule(_url, _page, settings_page, methods=["GET", "POST"],
                    defaults={"page": _page})


# --- auto-generated whitelist ------------------------------------------------------------------

@bp.route("/auto-whitelist", methods=["GET", "POST"])
@requires(Access.ADMIN)
def auto_whitelist():
    keys = PAGE_KEYS["auto_whitelist"]
    form = SETTINGS_FORMS["auto_whitelist"](data=form_data(keys, settings()))
    errors = submit(form, lambda: save_settings(form_values(form, keys),
                                                  page="auto_whitelist", **who()))
    if errors is None:
        return redirect(url_for("antispam.auto_whitelist"))
    sort = request.args.get("sort", "frequency")
    return _render("auto_whitelist.html", "auto_whitelist", form=form, errors=errors,
                   sort=sort, entries=service.auto_entries(sort), list_form=AutoListForm(),
                   custom_off=(service.CUSTOM_WHITELIST_OFF
                               if service.custom_whitelist_off() else None))


@bp.route("/auto-whitelist/manage", methods=["POST"])
@requires(Access.ADMIN)
def auto_whitelist_manage():
    """List management. Delete asks first, as every other Delete of the console does: posted
    from the list, the guide's "Are you sure?" as a page listing the selected entries; posted
    from there with Yes, the Delete of those entries (of those still listed: nothing when
    another tab moved or deleted them meanwhile)."""
    form = AutoListForm()
    sort = request.args.get("sort", "frequency")
    if form.validate_on_submit():
        action = "delete" if form.confirm.data else next(
            (a for a in service.AUTO_ACTIONS if form[a].data), None)
        if action and form.domains.data:
            if action == "delete" and not form.confirm.data:
                return _confirm_auto_delete(form.domains.data, sort)
            try:
                moved = service.move_auto_entries(action, form.domains.data, **who())
            except SettingError as exc:
                for key, rule in exc.errors:
                    flash(f"{key}: {rule}", "error")
            else:
                count = moved.count - len(moved.already)
                flash(f"{count} entr{'y' if count == 1 else 'ies'}: {AUTO_DONE[action]}."
                      if count or action != "delete" else NOTHING_DELETED, "info")
                if moved.already:
                    flash(f"{', '.join(moved.already)}: {AUTO_COVERED[action]}", "info")
                for warning in service.move_warnings(action):
                    flash(warning, "warning")
        else:
            flash("Select one or more entries, then an action.", "info")
    return redirect(url_for("antispam.auto_whitelist", sort=sort))


def _confirm_auto_delete(domains: list[str], sort: str):
    """The confirmation of Delete for the selected entries still listed, or (none is) back
    to the list saying nothing was deleted."""
    entries = service.listed_entries(domains, sort)
    if not entries:
        flash(NOTHING_DELETED, "info")
        return redirect(url_for("antispam.auto_whitelist", sort=sort))
    return _render("auto_whitelist_delete.html", "auto_whitelist", entries=entries, sort=sort,
                   gone=len({d.strip().lower() for d in domains if d.strip()}) - len(entries),
                   form=AutoListForm(formdata=None))


# --- real-time blacklists ----------------------------------------------------------------------

def _rbl_data() -> dict:
    data = form_data(PAGE_KEYS["rbl"], settings())
    for i, zone in enumerate(service.rbl_rows(RBL_ZONE_ROWS)):
        data[f"zone{i}_enabled"] = zone["enabled"]
        data[f"zone{i}_zone"] = zone["zone"]
        data[f"zone{i}_codes"] = "\n".join(zone["return_codes"])
    return data


@bp.route("/rbl", methods=["GET", "POST"])
@requires(Access.ADMIN)
def rbl():
    form = RblForm(data=_rbl_data())
    errors: list[str] = []
    if form.validate_on_submit():
        rows = [{"enabled": form[f"zone{i}_enabled"].data, "zone": form[f"zone{i}_zone"].data,
                 "codes": form[f"zone{i}_codes"].data} for i in range(RBL_ZONE_ROWS)]
        try:
            changed = service.save_rbl(rows, form_values(form, PAGE_KEYS["rbl"]), **who())
        except SettingError as exc:
            errors = attach_errors(form, service.zone_error_fields(exc, rows))
        else:
            flash("Changes saved." if changed else "No changes to save.", "info")
            return redirect(url_for("antispam.rbl"))
    return _render("rbl.html", "rbl", form=form, errors=errors, rows=range(RBL_ZONE_ROWS),
                   warnings=service.one_label_zones(settings()))


# --- spam rules --------------------------------------------------------------------------------

def _rule_forms():
    out = []
    for i, rule in enumerate(settings()["rules.spam"]):
        shown = rule_key(rule)
        out.append((i, rule, SpamRuleForm(formdata=None, prefix=f"r{i}", index=str(i),
                                          original=shown,
                                          name=rule.get("name", ""), enabled=rule["enabled"],
                                          match=rule["match"],
                                          terms=join_terms(rule["terms"]),
                                          none_of=join_terms(rule["none_of"])),
                    DeleteRuleForm(formdata=None, prefix=f"d{i}", index=str(i),
                                   original=shown)))
    return out


@bp.route("/spam-rules", methods=["GET", "POST"])
@requires(Access.ADMIN)
def spam_rules():
    keys = PAGE_KEYS["spam_rules"]
    form = SETTINGS_FORMS["spam_rules"](data=form_data(keys, settings()))
    errors = submit(form, lambda: save_settings(form_values(form, keys),
                                                  page="spam_rules", **who()))
    if errors is None:
        return redirect(url_for("antispam.spam_rules"))
    return _spam_rules_page(form, errors)


def _spam_rules_page(form, errors, refused: str | None = None, rule_form=None,
                     rule_errors: list[str] | None = None, stale=None,
                     marked: dict[int, SettingError] | None = None):
    """The Spam Rules page; a `refused` rule form (its prefix) is shown as it was typed, with
    its errors, in place of the stored rule's (or of the empty "new" form). A `stale` rule
    form, whose rule the list no longer holds as the page showed it, is shown as typed on its
    own, read-only, above the rules as they now are, for the administrator to copy. `marked`:
    stored rules this release's rules refuse (`_refused_stored_rules`), each shown with its
    errors by its fields."""
    rules, stored_errors = [], {}
    for i, rule, f, d in _rule_forms():
        if refused == f"r{i}":
            f = rule_form
        elif i in (marked or {}):
            stored_errors[f"r{i}"] = attach_errors(f, rule_form_errors(
                marked[i], "rules.spam", 0, join_terms(rule["terms"]),
                join_terms(rule["none_of"])))
        rules.append((i, rule, f, d))
    new_rule = rule_form if refused == "new" else SpamRuleForm(formdata=None, prefix="new")
    return _render("spam_rules.html", "spam_rules", form=form, errors=errors, rules=rules,
                   new_rule=new_rule, refused=refused, rule_errors=rule_errors or [],
                   stale=stale, stale_message=STALE_RULE, stored_errors=stored_errors,
                   stored_refused=STORED_REFUSED)


def _refused_stored_rules(index: int | None) -> dict[int, SettingError]:
    """The stored rules but `index` (the one being saved) that this release's rules refuse
    on their own (an older release stored them), each's error as a one-rule list's. Every
    save of the list is refused while one is there; the message used to come under the
    rule being saved, and the rule to correct was not marked (upgrade17 C3)."""
    marked = {}
    for i, rule in enumerate(settings()["rules.spam"]):
        if i == index:
            continue
        try:
            SCHEMA["rules.spam"].kind.check([rule])
        except RuleError as exc:
            marked[i] = SettingError([("rules.spam", exc.rule)], {"rules.spam": exc})
    return marked


def _without_rules(exc: SettingError, marked: dict[int, SettingError]) -> SettingError:
    """`exc` without what it says of the `marked` rules (they are shown with their own)."""
    cause = exc.causes.get("rules.spam")
    if not marked or cause is None or not cause.entries:
        return exc
    kept = tuple((position, error) for position, error in cause.entries
                 if position - 1 not in marked)
    if not kept:
        return SettingError([(k, r) for k, r in exc.errors if k != "rules.spam"],
                            {k: c for k, c in exc.causes.items() if k != "rules.spam"})
    return SettingError(exc.errors, {**exc.causes,
                                     "rules.spam": RuleError(cause.rule, entries=kept)})


def _page_form():
    keys = PAGE_KEYS["spam_rules"]
    return SETTINGS_FORMS["spam_rules"](formdata=None, data=form_data(keys, settings()))


def _flash_form_errors(form) -> None:
    for name, messages in form.errors.items():
        for message in messages:
            flash(f"{form[name].label.text}: {message}", "error")


def _flash_setting_errors(exc: SettingError) -> None:
    for key, text in exc.errors:
        flash(f"{key}: {text}", "error")


@bp.route("/spam-rules/save", methods=["POST"])
@requires(Access.ADMIN)
def save_spam_rule():
    prefix = request.form.get("prefix", "new")
    if not SAVE_PREFIX.fullmatch(prefix):
        abort(400)
    form = SpamRuleForm(prefix=prefix)
    if not form.validate_on_submit():
        if form.errors and "index" not in form.errors:   # a field the page shows: the rule
            return _spam_rules_page(_page_form(), [], prefix, form)   # kept as typed (B6)
        _flash_form_errors(form)
    else:
        index = int(form.index.data) if form.index.data else None    # the form checked digits
        try:
            rule = rule_from_form(form.enabled.data, form.name.data, form.match.data,
                                  form.terms.data, form.none_of.data,
                                  stored=settings()["rules.spam"])
            changed = service.save_rule(index, form.original.data or "", rule, **who())
        except RuleListChanged:                  # the page is stale: the rules as they are
            return _spam_rules_page(_page_form(), [], stale=form)   # now, and what was typed
        except SettingError as exc:              # shown again as typed, with the errors
            marked = _refused_stored_rules(index)
            errors = attach_errors(form, rule_form_errors(_without_rules(exc, marked),
                                                          "rules.spam", index,
                                                          form.terms.data, form.none_of.data))
            errors += [REFUSED_ELSEWHERE.format(number=i + 1) for i in marked]
            return _spam_rules_page(_page_form(), [], prefix, form, errors, marked=marked)
        else:
            flash("Spam rule saved." if changed else "No changes to save.", "info")
    return redirect(url_for("antispam.spam_rules"))


@bp.route("/spam-rules/delete", methods=["POST"])
@requires(Access.ADMIN)
def delete_spam_rule():
    """Delete a spam rule: the guide's "Are you sure?" as a page showing it, then (confirmed)
    the delete, of that rule only (nothing when the list changed meanwhile)."""
    prefix = request.form.get("prefix", "")
    if not DELETE_PREFIX.fullmatch(prefix):
        abort(400)
    form = DeleteRuleForm(prefix=prefix)
    if not form.validate_on_submit():
        _flash_form_errors(form)
    else:
        try:
            if not form.confirm.data:
                index = int(form.index.data)
                rule = service.rule_at(index, form.original.data or "")
                return _render("spam_rule_delete.html", "spam_rules", prefix=prefix,
                               number=index + 1, rule=rule, terms=join_terms(rule["terms"]),
                               none_of=join_terms(rule["none_of"]),
                               form=DeleteRuleForm(formdata=None, prefix=prefix,
                                                   index=form.index.data,
                                                   original=form.original.data))
            service.delete_rule(int(form.index.data), form.original.data or "", **who())
        except SettingError as exc:
            _flash_setting_errors(exc)
        else:
            flash("Spam rule deleted.", "info")
    return redirect(url_for("antispam.spam_rules"))


# --- premium (later issue) -------------------------------------------------------------------

@bp.route("/premium")
@requires(Access.ADMIN)
def premium():
    return _render("premium.html", "premium", notice=PREMIUM_NOTICE,
                   sections=settings_sections(("premium",)))
