"""The Status page (guide Table 7-1): the core's status snapshot, its events and a traffic chart."""

from flask import Blueprint

bp = Blueprint("status", __name__, url_prefix="/status", template_folder="templates")

from console.status import views  # noqa: E402,F401

__all__ = ["bp"]
