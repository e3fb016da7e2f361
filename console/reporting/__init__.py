"""Reporting (SPEC §7, guide ch. 7): summary and detail reports, charts, CSV download."""

from flask import Blueprint

from console.roles import public

bp = Blueprint("reporting", __name__, url_prefix="/reporting", template_folder="templates",
               static_folder="static", static_url_path="/static")


@bp.record_once
def _static_files_are_public(state) -> None:
    """The page's stylesheet is served like the console's own static files (no logon)."""
    endpoint = f"{bp.name}.static"
    view = state.app.view_functions.get(endpoint)
    if view is not None:
        def static_file(filename):
            return view(filename)
        state.app.view_functions[endpoint] = public(static_file)


from console.reporting import views  # noqa: E402,F401

__all__ = ["bp"]
