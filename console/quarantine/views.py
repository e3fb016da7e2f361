"""Spam Quarantine: says plainly what is not built yet and shows the settings in force."""

from flask import render_template

from console.placeholders import settings_sections
from console.roles import Access, requires
from console.quarantine import bp

PAGES = ('quarantine', 'ldap')
NOTICE = ('The spam quarantine (message list, release, delete, user logon through LDAP) is not built yet; it arrives with the quarantine issue. The settings in force are listed below.')


@bp.route("/")
@requires(Access.ADMIN)
def index():
    return render_template("quarantine/index.html", title="Spam Quarantine", notice=NOTICE,
                           sections=settings_sections(PAGES))
