"""Configuration (guide chapter 3): Accounts, Setup, Hold Queue, Scan Policy, Routing, Alerts,
Notifications, Logging, Diagnostics and Certificate Management (reached from Setup)."""

from flask import Blueprint

bp = Blueprint("configuration", __name__, url_prefix="/configuration",
               template_folder="templates")

from console.configuration import views  # noqa: E402,F401

__all__ = ["bp"]
