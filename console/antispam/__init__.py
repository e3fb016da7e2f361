"""Anti-spam Policy (SPEC §7): a left-pane entry whose pages a later issue fills."""

from flask import Blueprint

bp = Blueprint("antispam", __name__, url_prefix="/antispam", template_folder="templates")

from console.antispam import views  # noqa: E402,F401

__all__ = ["bp"]
