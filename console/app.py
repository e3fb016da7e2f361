"""`create_app(home)`: the console's one factory (STYLE §1 "Console", flaskr's pattern).

It wires everything — the event writer, Flask-Login, CSRF, security headers, error pages and
one blueprint per left-pane entry — and has no import-time side effects. Serving lives in
`console.serve`; nothing here opens a socket.
"""

from __future__ import annotations

import secrets
from typing import Any, Mapping

from flask import Flask
from flask_login import LoginManager, current_user

from console.context import EXTENSION_KEY, ConsoleContext, close_request_db, settings
from console.roles import Access, may, public
from shared.clock import SYSTEM_CLOCK, WallClock
from shared.events import EventWriter
from shared.paths import DataHome

__all__ = ["create_app", "NAVIGATION"]

# The left pane (SPEC §7), in the guide's order: (endpoint, title, access).
NAVIGATION: tuple[tuple[str, str, Access], ...] = (
    ("status.index", "Status", Access.REPORTS),
    ("configuration.index", "Configuration", Access.ADMIN),
    ("antivirus.index", "Antivirus Policy", Access.ADMIN),
    ("antispam.index", "Anti-spam Policy", Access.ADMIN),
    ("filtering.index", "Filtering Policy", Access.ADMIN),
    ("quarantine.index", "Spam Quarantine", Access.ADMIN),
    ("reporting.index", "Reporting", Access.REPORTS),
    ("liveupdate.index", "LiveUpdate", Access.ADMIN),
    ("licensing.index", "Licensing", Access.ADMIN),
)


def create_app(home: DataHome, clock: WallClock | None = None,
               config: Mapping[str, Any] | None = None) -> Flask:
    """A console app for the data home `home`.

    `clock` is the wall clock for sessions and events (tests pass a FakeClock); `config`
    overrides Flask settings (tests: TESTING, WTF_CSRF_ENABLED, …).
    """
    from console import (antispam, antivirus, auth, configuration, filtering, licensing,
                         liveupdate, quarantine, reporting, status)
    from console import security
    from console.auth.forms import LogoffForm
    from console.auth.service import check_session, load_user

    app = Flask(__name__)
    app.session_interface = security.SchemeSessionInterface()
    app.config.update(
        # A fresh key per process: sessions end when the console restarts, and no secret
        # has to be stored. HTTP and HTTPS are served by this one app, so they share it.
        SECRET_KEY=secrets.token_bytes(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="mailmoat_session",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session (idle timeout)
        MAX_CONTENT_LENGTH=security.MAX_POST_OCTETS,
        PROPAGATE_EXCEPTIONS=False,
        TRAP_HTTP_EXCEPTIONS=False,
    )
    if config:
        app.config.update(config)

    clock = clock or SYSTEM_CLOCK
    ctx = ConsoleContext(home=home, clock=clock,
                         events=EventWriter(home.db, process="console", clock=clock))
    app.extensions[EXTENSION_KEY] = ctx

    # first: its request id must exist before anything else can fail (CSRFProtect reads
    # the body, which raises 413 for a post over MAX_CONTENT_LENGTH)
    security.install(app)
    security.FormProtection(app)     # CSRF tokens, and where an HTTPS form came from
    login = LoginManager(app)
    login.session_protection = "basic"
    login.user_loader(load_user)

    @login.unauthorized_handler
    def _unauthorized():
        from console.auth.service import login_required_response
        return login_required_response()

    app.teardown_appcontext(close_request_db)

    @app.before_request
    def _session_checks():
        check_session(current_user)

    for module in (auth, status, configuration, antivirus, antispam, filtering, quarantine,
                   reporting, liveupdate, licensing):
        app.register_blueprint(module.bp)

    app.view_functions["static"] = public(app.view_functions["static"])
    app.add_url_rule("/", "index", public(_index))

    from console.status.service import format_time
    app.add_template_filter(format_time, "datetime")

    @app.context_processor
    def _layout():
        user = current_user if current_user.is_authenticated else None
        nav = [(endpoint, title) for endpoint, title, access in NAVIGATION
               if user is not None and may(user.role, access)]
        return {"navigation": nav, "user": user,
                # formdata=None: the layout's form never reads the request; the 413 page
                # of a too-large post drew a bare 500 when building it read the body again
                "logoff_form": LogoffForm(formdata=None) if user else None,
                "settings_values": settings}

    return app


def _index():
    from flask import redirect, url_for
    return redirect(url_for("status.index"))
