"""Spam Quarantine (SPEC §7): a left-pane entry whose pages a later issue fills."""

from flask import Blueprint

bp = Blueprint("quarantine", __name__, url_prefix="/quarantine", template_folder="templates")

from console.quarantine import views  # noqa: E402,F401

__all__ = ["bp"]
