"""Logon, logoff and sessions (SPEC §7): the built-in `admin` and `report` accounts."""

from flask import Blueprint

bp = Blueprint("auth", __name__, template_folder="templates")

from console.auth import views  # noqa: E402,F401  (registers the routes on bp)

__all__ = ["bp"]
