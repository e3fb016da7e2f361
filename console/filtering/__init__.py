"""Filtering Policy (SPEC §7): a left-pane entry whose pages a later issue fills."""

from flask import Blueprint

bp = Blueprint("filtering", __name__, url_prefix="/filtering", template_folder="templates")

from console.filtering import views  # noqa: E402,F401

__all__ = ["bp"]
