"""Who may see what (SPEC §7 roles), declared on every view.

Rules:
- Every view function carries exactly one access level, set by `@requires(...)` or
  `@public`; a test walks `app.url_map` and fails on any endpoint without one.
- `Access.ADMIN`: the administrator only. A report-only administrator who asks for such a
  page gets 403 and an `unauthorized_access` event (which raises the alert when enabled),
  whatever else is wrong with the request: a form posted without a valid token is refused
  for the role too, not as "Form expired" without a trace (`refused_for_role`, called by
  console.security's token check; SPEC §7, authz finding 2). A client writes a bounded
  number of these events (console.throttle.UnauthorizedBudget); the 403 is always sent.
- `Access.REPORTS`: administrator and report-only administrator (Status and Reporting).
- Anonymous users are sent to the logon page, never shown a 403.
"""

from __future__ import annotations

import enum
from functools import wraps
from typing import Callable

from flask import abort, current_app, request
from flask_login import current_user

__all__ = ["Access", "Role", "requires", "public", "access_of", "ACCESS_ATTRIBUTE",
           "refused_for_role"]

ACCESS_ATTRIBUTE = "mailmoat_access"


class Role(enum.StrEnum):
    ADMINISTRATOR = "administrator"
    REPORT_ONLY = "report_only"


class Access(enum.StrEnum):
    PUBLIC = "public"
    REPORTS = "reports"
    ADMIN = "admin"


ALLOWED: dict[Access, frozenset[Role]] = {
    Access.REPORTS: frozenset({Role.ADMINISTRATOR, Role.REPORT_ONLY}),
    Access.ADMIN: frozenset({Role.ADMINISTRATOR}),
}


def may(role: Role, access: Access) -> bool:
    return access is Access.PUBLIC or role in ALLOWED[access]


def requires(access: Access) -> Callable:
    """Decorate a view: log on first, then the user's role must allow `access`."""
    if access is Access.PUBLIC:
        return public

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def guarded(*args, **kwargs):
            from console.auth.service import login_required_response, record_unauthorized

            if not current_user.is_authenticated:
                return login_required_response()
            if not may(current_user.role, access):
                record_unauthorized(current_user.id, request.path)
                abort(403)
            return view(*args, **kwargs)

        setattr(guarded, ACCESS_ATTRIBUTE, access)
        return guarded

    return decorate


def refused_for_role() -> bool:
    """For a request refused before its view could run (a form without a valid token): True
    when it comes from a live session whose role may not open that view. Its refusal is
    then recorded as the view's guard records it, and the caller answers 403 instead. The
    session checks the request has not met yet run first, so an ended session is refused
    as before and writes no unauthorized_access event."""
    from console.auth.service import check_session, record_unauthorized

    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    access = access_of(view) if view is not None else None
    if access is None or not current_user.is_authenticated \
            or may(current_user.role, access) or check_session(current_user):
        return False
    record_unauthorized(current_user.id, request.path)
    return True


def public(view: Callable) -> Callable:
    """Mark a view as open to anyone (logon page, static files)."""
    setattr(view, ACCESS_ATTRIBUTE, Access.PUBLIC)
    return view


def access_of(view: Callable) -> Access | None:
    return getattr(view, ACCESS_ATTRIBUTE, None)
