"""A Flask test client on a console app that knows the CSRF token, the accounts and the
database: what console tests and integration tests that press a console button use."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys

from shared import db
from shared.paths import DataHome
from shared.settings_store import apply_changes
from tests.support.core import ADMIN_PASSWORD, stored_settings

__all__ = ["Console", "console_on", "console_process"]

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


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
        # Browsers send a same-origin Referer (console.security checks one over HTTPS).
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


@contextlib.contextmanager
def console_on(home: DataHome):
    """A console app on `home` (as a second process on the same data home would be) and its
    Console, logged on as admin; the app closed afterwards."""
    from console.app import create_app

    app = create_app(home, config={"TESTING": True})
    try:
        console = Console(app, home)
        response = console.logon()
        assert response.status_code == 302, response.get_data(as_text=True)
        yield console
    finally:
        app.extensions["mailmoat"].close()


@contextlib.contextmanager
def console_process(home: DataHome):
    """`mailmoat console --home` as its own process, its output in pipes (unbuffered); killed
    on the way out if the test did not stop it."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from shared.cli import main; sys.exit(main())",
         "console", "--home", str(home.root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
