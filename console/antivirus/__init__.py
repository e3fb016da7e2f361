"""Antivirus Policy (SPEC §7; guide §4): antivirus settings, outbreak alert, virus quarantine."""

from flask import Blueprint

bp = Blueprint("antivirus", __name__, url_prefix="/antivirus", template_folder="templates")

from console.antivirus import views  # noqa: E402,F401

__all__ = ["bp"]
