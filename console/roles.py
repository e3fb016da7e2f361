"""Who may see what (SPEC §7 roles), declared on every view.

Rules:
- Every view function carries exactly one access level, set by `@requires(...)` or
  `@public`; a test walks `app.url_map` and fails on any endpoint without one.
- `Access.ADMIN`: the administrator only. A report-only administrator who asks for such a
  page gets 403 and an `unauthorized_access` event (which raises the alert when enabled).
- `Access.REPORTS`: administrator and report-only administrator (Status and Reporting).
- Anonymous users are sent to the logon page, never shown a 403.
"""

from __future__ import annotations

import enum
from functools import wraps
from typing import Callable

from flask import abort, request
from flask_login import current_user

__all__ = ["Access", "Role", "requires", "public", "access_of", "ACCESS_ATTRIBUTE"]

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


def public(view: Callable) -> Callable:
    """Mark a view as open to anyone (logon page, static files)."""
    setattr(view, ACCESS_ATTRIBUTE, Access.PUBLIC)
    return view


def access_of(view: Callable) -> Access | None:
    return getattr(view, ACCESS_ATTRIBUTE, None)
