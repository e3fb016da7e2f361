"""Anti-spam Policy: says plainly what is not built yet and shows the settings in force."""

from flask import render_template

from console.placeholders import settings_sections
from console.roles import Access, requires
from console.antispam import bp

PAGES = ('whitelist', 'rbl', 'blacklist', 'heuristic', 'premium', 'spam_rules')
NOTICE = ('Editing the anti-spam policy here (whitelists, real-time blacklists, custom blacklist, heuristic engine, Premium AntiSpam, spam rules) arrives with the antispam issue. The settings in force are listed below.')


@bp.route("/")
@requires(Access.ADMIN)
def index():
    return render_template("antispam/index.html", title="Anti-spam Policy", notice=NOTICE,
                           sections=settings_sections(PAGES))
