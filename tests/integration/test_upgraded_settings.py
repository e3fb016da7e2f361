"""A data home an older release wrote, used by this one (upgrade findings 1-3): values that
release accepted and today's rules refuse block no change of another key, the core runs on
them, `config import` of that release's export names every key to correct, and mail a content
rule would send to the (unbuilt) spam quarantine lands in the hold queue instead.

Old values are written straight into the settings table, as the older release's `config set`
wrote them. The CLI runs as a subprocess of the tree this test is in; the core runs in
process, on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from core.app import run_core
from shared.events import Action
from tests.support.core import make_home, routed_home, store_unchecked, stored_settings
from tests.support.mail import send_text
from tests.support.waiting import events_of

ROOT = Path(__file__).resolve().parents[2]

# Accepted by older releases (the upgrade tester's homes HEAD~460..HEAD~250), refused now.
OLD_VALUES = {
    "filename.enabled": True,
    "filename.patterns": ["*.exe", "?*"],
    "av.clamd.address": "clamhost",
    "address_chars.chars": "!%,",
    "whitelist.custom": ["@friend.test", "*@wild.test"],
    "rbl.zones": [{"enabled": True, "zone": "rbl.upgrade.test", "return_codes": []},
                  {"enabled": False, "zone": "rbl.upgrade.test", "return_codes": []}],
    "rules.content": [{"enabled": True, "match": "any", "terms": ["confidential project"],
                       "none_of": []}],
    "rules.content_action": "quarantine",
}


def mailmoat(*args, expect=0) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"}
    environ["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-m", "shared.cli", *map(str, args)],
                            capture_output=True, text=True, env=environ, cwd=ROOT, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
    return result


@pytest.fixture
def upgraded(tmp_path, sink):
    home = routed_home(tmp_path / "home", sink)
    store_unchecked(home, OLD_VALUES)
    return home


def test_config_set_of_another_key_succeeds_and_of_the_old_value_is_refused(upgraded):
    """Upgrade finding 1: `config set admin.timeout_minutes 50` answered "filename.patterns:
    '?*' alone would delete every attachment" and exit 2, and so did every other change."""
    assert mailmoat("config", "set", "admin.timeout_minutes", "50", "--home", upgraded.root
                    ).stdout == "admin.timeout_minutes set\n"
    assert mailmoat("config", "set", "rbl.action", "log", "--home", upgraded.root
                    ).stdout == "rbl.action set\n"
    assert stored_settings(upgraded)["admin.timeout_minutes"] == 50

    refused = mailmoat("config", "set", "filename.patterns", '["*.exe", "?*", "*.scr"]',
                       "--home", upgraded.root, expect=2)
    assert refused.stderr == "filename.patterns: '?*' alone would delete every attachment\n"
    refused = mailmoat("config", "set", "rules.content_action", "quarantine",
                       "--home", upgraded.root, expect=2)
    assert refused.stderr.startswith("rules.content_action: quarantine is not available yet")
    assert stored_settings(upgraded)["filename.patterns"] == ["*.exe", "?*"]
    mailmoat("config", "set", "filename.patterns", '["*.exe"]', "--home", upgraded.root)


def test_turning_on_the_subject_filter_with_a_stored_match_all_line_is_refused(tmp_path, sink):
    """Upgrade16 finding 1: with subject.lines ["*"] stored (subject.enabled false), `config
    set subject.enabled true` was accepted, and every message was then dropped. The console,
    whose form sends both keys, refused it; `config set` and `config import` of the switch
    alone now do too. Turning the filter off stays allowed."""
    home = routed_home(tmp_path / "home", sink)
    store_unchecked(home, {"subject.enabled": False, "subject.lines": ["*"],
                           "filename.enabled": False, "filename.patterns": ["*.exe", "?*"]})
    line = ("subject.enabled: subject.lines holds '*', which alone would block every "
            "message: correct subject.lines first\n")
    assert mailmoat("config", "set", "subject.enabled", "true", "--home", home.root,
                    expect=2).stderr == line
    switches = tmp_path / "switches.json"
    switches.write_text(json.dumps({"subject.enabled": True, "filename.enabled": True}),
                        "utf-8")
    assert mailmoat("config", "import", switches, "--home", home.root, expect=2
                    ).stderr.splitlines() == [
        "filename.enabled: filename.patterns holds '?*', which alone would delete every "
        "attachment: correct filename.patterns first", line.strip()]
    assert mailmoat("config", "set", "subject.enabled", "false", "--home", home.root
                    ).returncode == 0
    stored = stored_settings(home)
    assert stored["subject.enabled"] is False and stored["filename.enabled"] is False


def test_import_of_the_old_export_names_every_key_to_correct_then_imports(upgraded, tmp_path):
    """Upgrade finding 2: refused in rounds (filename.patterns only once the others were
    corrected), with nothing saying that nothing was imported or what to do."""
    exported = json.loads(mailmoat("config", "export", "--home", upgraded.root).stdout)
    target = make_home(tmp_path / "target")
    before = stored_settings(target)
    backup = tmp_path / "old-export.json"
    backup.write_text(json.dumps(exported), "utf-8")

    refused = mailmoat("config", "import", backup, "--home", target.root, expect=2)
    assert [line.split(":", 1)[0] for line in refused.stderr.splitlines()] == [
        "address_chars.chars", "av.clamd.address", "whitelist.custom", "rbl.zones",
        "filename.patterns", "rules.content_action"]
    assert stored_settings(target) == before

    exported.update({"address_chars.chars": "!%", "av.clamd.address": "clamhost:3310",
                     "whitelist.custom": ["@friend.test"], "filename.patterns": ["*.exe"],
                     "rbl.zones": exported["rbl.zones"][:1], "rules.content_action": "drop"})
    backup.write_text(json.dumps(exported), "utf-8")
    mailmoat("config", "import", backup, "--home", target.root)
    assert stored_settings(target)["whitelist.custom"] == ["@friend.test"]


@pytest.mark.trio
async def test_content_rule_quarantine_holds_the_mail_where_an_administrator_can_reach_it(
        upgraded, sink, nursery):
    """Upgrade finding 3: the stored action quarantine sent matching mail to
    spool/quarantine/spam/, which no page or command can show or release."""
    core = await nursery.start(run_core, upgraded)
    await trio.to_thread.run_sync(send_text, core.smtp_addresses[0][1], "Status report",
                                  "About the confidential project.\n", "sender@client.test")
    with trio.fail_after(30):
        while not (await core.events.aflush() or events_of(upgraded, Action.HELD)
                   or events_of(upgraded, Action.QUARANTINED)):
            await trio.sleep(0.05)
    assert events_of(upgraded, Action.QUARANTINED) == []
    [held] = events_of(upgraded, Action.HELD)
    assert held["rule"] == "rules.content[0]"
    assert "content rule rules.content[0] matched: 'confidential project'" in held["info"]
    assert "the spam quarantine cannot show or release mail" in held["info"]
    [violation] = events_of(upgraded, Action.CONTENT_RULE_VIOLATION)
    assert violation["result"] == "held"
    assert [p.name for p in upgraded.queue("hold").iterdir()] == [held["queue_id"]]
    assert list(upgraded.queue("quarantine/spam").iterdir()) == []

    # the hold queue's forward reaches the recipient (copies are not scanned)
    result = await trio.to_thread.run_sync(
        lambda: mailmoat("queue", "forward", "user@local.test", "--hold", "--home",
                         upgraded.root))
    assert "1 copy(ies) forwarded to user@local.test" in result.stdout
    [copy] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert copy.recipients == ["user@local.test"] and b"confidential project" in copy.data
    core.cancel_scope.cancel()
