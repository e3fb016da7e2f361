"""Reporting: says plainly what is not built yet and shows the settings in force."""

from flask import render_template

from console.placeholders import settings_sections
from console.roles import Access, requires
from console.reporting import bp

PAGES = ()
NOTICE = ('Summary and detail reports with CSV download are not built yet; they arrive with the reporting issue. Until then, `mailmoat report` is the place to look once it exists.')


@bp.route("/")
@requires(Access.REPORTS)
def index():
    return render_template("reporting/index.html", title="Reporting", notice=NOTICE,
                           sections=settings_sections(PAGES))
