"""Filtering Policy: says plainly what is not built yet and shows the settings in force."""

from flask import render_template

from console.placeholders import settings_sections
from console.roles import Access, requires
from console.filtering import bp

PAGES = ('content', 'container', 'encrypted', 'relay', 'content_rules')
NOTICE = ('Editing the filtering policy here (content, container limits, encrypted containers, anti-relay, content rules) arrives with the filtering issue. The settings in force are listed below.')


@bp.route("/")
@requires(Access.ADMIN)
def index():
    return render_template("filtering/index.html", title="Filtering Policy", notice=NOTICE,
                           sections=settings_sections(PAGES))
