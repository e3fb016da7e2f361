"""Licensing: says plainly what is not built yet and shows the settings in force."""

from flask import render_template

from console.placeholders import settings_sections
from console.roles import Access, requires
from console.licensing import bp

PAGES = ()
NOTICE = ('Licensing is not built yet; it arrives with the licensing issue. Mailmoat runs every feature without a license file until then.')


@bp.route("/")
@requires(Access.ADMIN)
def index():
    return render_template("licensing/index.html", title="Licensing", notice=NOTICE,
                           sections=settings_sections(PAGES))
