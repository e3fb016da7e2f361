"""The one way a settings form is submitted (Post/Redirect/Get), shared by every area.

`submit(form, save)` validates the form's shape, calls `save()` (which asks the settings
schema and stores), flashes the outcome and returns None when saved — the view then
redirects; otherwise it returns the schema's messages, already attached to their fields,
for the view to re-render. `who()` is the actor every saved change is recorded under.
"""

from __future__ import annotations

from typing import Any, Callable

from flask import flash, request
from flask_login import current_user

from console.schema_forms import attach_errors
from shared.settings import SettingError

__all__ = ["submit", "who"]


def who() -> dict[str, Any]:
    return {"user": current_user.id, "client_ip": request.remote_addr}


def submit(form, save: Callable[[], Any]) -> list[str] | None:
    """None when the form was valid and saved; else the errors to show (possibly none,
    for a GET or a form that failed its field validators)."""
    if not form.validate_on_submit():
        return []
    try:
        changed = save()
    except SettingError as exc:
        return attach_errors(form, exc)
    flash("Changes saved." if changed else "No changes to save.", "info")
    return None
