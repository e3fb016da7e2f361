"""Licensing (SPEC §7): a left-pane entry whose pages a later issue fills."""

from flask import Blueprint

bp = Blueprint("licensing", __name__, url_prefix="/licensing", template_folder="templates")

from console.licensing import views  # noqa: E402,F401

__all__ = ["bp"]
