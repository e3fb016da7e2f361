"""Reporting (SPEC §7): a left-pane entry whose pages a later issue fills."""

from flask import Blueprint

bp = Blueprint("reporting", __name__, url_prefix="/reporting", template_folder="templates")

from console.reporting import views  # noqa: E402,F401

__all__ = ["bp"]
