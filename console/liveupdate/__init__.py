"""LiveUpdate (SPEC §7): a left-pane entry whose pages a later issue fills."""

from flask import Blueprint

bp = Blueprint("liveupdate", __name__, url_prefix="/liveupdate", template_folder="templates")

from console.liveupdate import views  # noqa: E402,F401

__all__ = ["bp"]
