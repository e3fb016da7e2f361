"""LiveUpdate: says plainly what is not built yet and shows the settings in force."""

from flask import render_template

from console.placeholders import settings_sections
from console.roles import Access, requires
from console.liveupdate import bp

PAGES = ('liveupdate',)
NOTICE = ('LiveUpdate status, schedule and “LiveUpdate now” are not built yet; they arrive with the LiveUpdate issue. The settings in force are listed below.')


@bp.route("/")
@requires(Access.ADMIN)
def index():
    return render_template("liveupdate/index.html", title="LiveUpdate", notice=NOTICE,
                           sections=settings_sections(PAGES))
