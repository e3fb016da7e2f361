"""Antivirus Policy: says plainly what is not built yet and shows the settings in force."""

from flask import render_template

from console.placeholders import settings_sections
from console.roles import Access, requires
from console.antivirus import bp

PAGES = ('antivirus', 'outbreak')
NOTICE = ('Editing the antivirus policy here arrives with the antivirus issue. The settings in force are listed below.')


@bp.route("/")
@requires(Access.ADMIN)
def index():
    return render_template("antivirus/index.html", title="Antivirus Policy", notice=NOTICE,
                           sections=settings_sections(PAGES))
