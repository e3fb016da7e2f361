"""Console tests: `create_app` on a temp data home, Flask's test client, a fake wall clock.

The data home is made once per session with `shared.home.initialise` and copied per test
(making the self-signed key costs more than the copy).
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from console.app import create_app
from shared import db
from shared.clock import FakeClock
from shared.home import initialise
from shared.paths import DataHome
from shared.settings_store import apply_changes
from tests.support.core import stored_settings

ADMIN_PASSWORD = "Admin-pass1"
REPORT_PASSWORD = "Report-pass2"
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def cheap_hash(password: str) -> str:
    from werkzeug.security import generate_password_hash
    return generate_password_hash(password, method="pbkdf2:sha256:1000")


@pytest.fixture(scope="session")
def template_home(tmp_path_factory) -> DataHome:
    home = DataHome(tmp_path_factory.mktemp("template") / "home")
    initialise(home, ADMIN_PASSWORD)
    # A cheap hash of the same password keeps the many logons of these tests fast; the
    # password-change tests still go through the real (slow, scrypt) hashing.
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {"admin.password": cheap_hash(ADMIN_PASSWORD)})
    finally:
        conn.close()
    return home


@pytest.fixture
def home(template_home, tmp_path) -> DataHome:
    target = tmp_path / "home"
    shutil.copytree(template_home.root, target)
    return DataHome(target)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(home, clock):
    app = create_app(home, clock=clock, config={"TESTING": True})
    yield app
    app.extensions["mailmoat"].close()


class Console:
    """A test client that knows the CSRF token, the accounts and the database."""

    def __init__(self, app, home: DataHome, base_url: str = "http://localhost"):
        self.app = app
        self.home = home
        self.client = app.test_client()
        self.base_url = base_url
        self._token: str | None = None

    # HTTP ---------------------------------------------------------------------------------
    def get(self, url, **kw):
        return self.client.get(url, base_url=self.base_url, **kw)

    def token(self) -> str:
        page = self.get("/logon").get_data(as_text=True)
        if self.token_from(page) is None:  # logged on: /logon redirects; any form page has one
            page = self.get("/status/").get_data(as_text=True)
        return self.token_from(page)

    @staticmethod
    def token_from(html: str) -> str | None:
        match = _CSRF.search(html)
        return match.group(1) if match else None

    def post(self, url, data=None, csrf=True, **kw):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.token())
        # Browsers send a same-origin Referer; Flask-WTF requires it over HTTPS.
        kw.setdefault("headers", {"Referer": self.base_url + "/"})
        return self.client.post(url, data=data, base_url=self.base_url, **kw)

    def logon(self, username="admin", password=ADMIN_PASSWORD):
        return self.post("/logon", {"username": username, "password": password})

    def logoff(self):
        return self.post("/logoff")

    # data ---------------------------------------------------------------------------------
    def settings(self) -> dict:
        return stored_settings(self.home)

    def set(self, **changes):
        conn = db.connect(self.home.db)
        try:
            apply_changes(conn, {k.replace("__", "."): v for k, v in changes.items()})
        finally:
            conn.close()

    def events(self, action=None) -> list[dict]:
        self.app.extensions["mailmoat"].events.flush()
        conn = db.connect(self.home.db)
        try:
            sql = "SELECT * FROM events"
            rows = conn.execute(sql + (" WHERE action = ?" if action else "") + " ORDER BY id",
                                (str(action),) if action else ()).fetchall()
        finally:
            conn.close()
        out = []
        for row in rows:
            item = dict(row)
            item["data"] = json.loads(item["data"]) if item["data"] else None
            out.append(item)
        return out

    def commands(self) -> list[dict]:
        conn = db.connect(self.home.db)
        try:
            rows = conn.execute("SELECT * FROM commands ORDER BY id").fetchall()
        finally:
            conn.close()
        return [{**dict(r), "args": json.loads(r["args"])} for r in rows]


@pytest.fixture
def console(app, home) -> Console:
    return Console(app, home)


@pytest.fixture
def admin(console) -> Console:
    response = console.logon()
    assert response.status_code == 302, response.get_data(as_text=True)
    return console


@pytest.fixture(scope="session")
def report_password_hash() -> str:
    return cheap_hash(REPORT_PASSWORD)


@pytest.fixture
def report_enabled(console, report_password_hash):
    console.set(admin__report_only__password=report_password_hash)
    console.set(admin__report_only__enabled=True)
    return console


@pytest.fixture
def reporter(app, home, report_enabled) -> Console:
    other = Console(app, home)
    response = other.logon("report", REPORT_PASSWORD)
    assert response.status_code == 302, response.get_data(as_text=True)
    return other
