"""Console tests: `create_app` on a temp data home, Flask's test client, a fake wall clock.

The data home is made once per session with `shared.home.initialise` and copied per test
(making the self-signed key costs more than the copy).
"""

from __future__ import annotations


import pytest

from console.app import create_app
from shared import db
from shared.clock import FakeClock
from shared.home import initialise
from shared.paths import DataHome
from shared.settings_store import apply_changes
from tests.support.console import Console
from tests.support.core import ADMIN_PASSWORD, copy_home

REPORT_PASSWORD = "Report-pass2"


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
    return copy_home(template_home, DataHome(tmp_path / "home"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(home, clock):
    app = create_app(home, clock=clock, config={"TESTING": True})
    yield app
    app.extensions["mailmoat"].close()


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
