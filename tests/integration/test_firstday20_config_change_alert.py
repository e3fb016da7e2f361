"""The "Configuration Change" alert says who changed what (firstday20 B2).

Its mail listed only the event's page ("object_modified ::1 Configuration › Routing",
"object_modified mailmoat config set"), though the event holds the user and every key's old
and new value: relay.mode becoming `allow` (an open relay) read like any other change. A
real core mails the alert to a sink on loopback for a change made in the console and for
one made from the command line; secrets stay "***".
"""

from __future__ import annotations

import email
import json
import os
import pwd
import subprocess
import sys
from email import policy

import trio

from core.app import run_core
from shared import db
from shared.guide_texts import ALERT_TEXTS
from tests.support.console import console_on
from tests.support.core import routed_home

NEW_PASSWORD = "Fresh-Secret42"


def _alert_body(mail) -> str:
    parsed = email.message_from_bytes(mail.data, policy=policy.default)
    assert parsed["Subject"] == ALERT_TEXTS["config_change"][0]
    return parsed.get_content().replace("\r\n", "\n")


def _stored_hash(home) -> str:
    conn = db.connect(home.db)
    try:
        return json.loads(conn.execute("SELECT value FROM settings WHERE key = ?",
                                       ("admin.password",)).fetchone()[0])
    finally:
        conn.close()


def _console_changes(home) -> None:
    with console_on(home) as console:
        response = console.post("/configuration/accounts/password/admin", {
            "admin-new_password": NEW_PASSWORD, "admin-confirm": NEW_PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)


async def test_a_console_change_is_mailed_with_its_user_and_keys_secrets_hidden(
        tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, admin__emails=["admin@local.test"],
                       alerts__config_change=True)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_console_changes, home)
    [mail] = await trio.to_thread.run_sync(sink.wait_for, 1)
    body = _alert_body(mail)
    [line] = [line for line in body.splitlines() if "object_modified" in line]
    assert line.endswith("Configuration › Accounts  by admin"), line
    assert '\n    admin.password: "***" → "***"' in body
    assert NEW_PASSWORD not in body and _stored_hash(home) not in body
    core.cancel_scope.cancel()


def _config_import(home, path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from shared.cli import main; sys.exit(main())",
         "config", "import", str(path), "--home", str(home.root)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


async def test_a_command_line_change_is_mailed_with_the_system_user_and_old_and_new(
        tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, admin__emails=["admin@local.test"],
                       alerts__config_change=True)
    core = await nursery.start(run_core, home)
    changes = tmp_path / "changes.json"
    changes.write_text(json.dumps({"relay.mode": "allow", "admin.password": NEW_PASSWORD}))
    await trio.to_thread.run_sync(_config_import, home, changes)
    [mail] = await trio.to_thread.run_sync(sink.wait_for, 1)
    body = _alert_body(mail)
    user = pwd.getpwuid(os.geteuid()).pw_name
    assert f"  object_modified  mailmoat config import  by {user}\n" \
           '    admin.password: "***" → "***"\n' \
           '    relay.mode: "deny_except" → "allow"\n' in body, body
    assert NEW_PASSWORD not in body and _stored_hash(home) not in body
    core.cancel_scope.cancel()
