"""`mailmoat init|migrate|config …` as a real subprocess (SPEC §2's stable interface)."""

import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared import db
from shared.paths import SPOOL_QUEUES, DataHome
from shared.settings import SCHEMA, check_password
from shared.settings_store import apply_changes, export_settings, load

ADMIN_PASSWORD = "Admin-Pass-1"
_SCRIPT = shutil.which("mailmoat", path=os.path.dirname(sys.executable))
MAILMOAT = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "shared.cli"]


def mailmoat(*args, env=None, expect=0):
    """Run the CLI; check its exit status and that no traceback escaped."""
    environ = {k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"}
    environ.update(env or {})
    result = subprocess.run([*MAILMOAT, *map(str, args)], capture_output=True, text=True,
                            env=environ, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
    return result


def stored(home, key=None):
    """Settings as stored (read in-process; hashes included)."""
    conn = db.connect(Path(home) / "mailmoat.db")
    try:
        values = export_settings(conn)
    finally:
        conn.close()
    return values if key is None else values[key]


def change(home, changes):
    conn = db.connect(Path(home) / "mailmoat.db")
    try:
        apply_changes(conn, changes)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One initialised home; tests that change it work on a copy (init costs a key pair)."""
    home = tmp_path_factory.mktemp("template") / "home"
    mailmoat("init", "--home", home, "--admin-password", ADMIN_PASSWORD)
    return home


@pytest.fixture
def home(template, tmp_path):
    copy = tmp_path / "home"
    shutil.copytree(template, copy)
    return copy


# --- init and the data home ----------------------------------------------------------------

def test_init_then_get(template):
    assert mailmoat("config", "get", "smtp.port", "--home", template).stdout == "25\n"


def test_data_home_layout(template):
    layout = DataHome(template)
    expected = [layout.root, layout.spool, *(layout.queue(q) for q in SPOOL_QUEUES),
                layout.spool / "quarantine", layout.definitions, layout.logs,
                layout.diagnostics, layout.tmp, layout.tls]
    for directory in expected:
        assert directory.is_dir(), directory
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    conn = db.connect(layout.db)
    try:
        db.check_schema(conn)
        assert load(conn)["quarantine.reinsertion_key"]
    finally:
        conn.close()
    cert = x509.load_pem_x509_certificate(layout.tls_cert.read_bytes())
    key = serialization.load_pem_private_key(layout.tls_key.read_bytes(), password=None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert stat.S_IMODE(layout.tls_key.stat().st_mode) == 0o600
    assert "localhost" in cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_init_is_idempotent_and_keeps_the_password(home):
    before = stored(home)
    cert = (home / "tls" / "cert.pem").read_bytes()

    out = mailmoat("init", "--home", home).stdout
    assert "already initialised" in out
    assert "Administrator password unchanged" in out and "shown once" not in out
    out = mailmoat("init", "--home", home, "--admin-password", "Other-Pass-2").stdout
    assert "Administrator password unchanged" in out
    assert stored(home) == before  # same hash, same generated key, nothing else touched
    assert check_password(stored(home, "admin.password"), ADMIN_PASSWORD)
    assert (home / "tls" / "cert.pem").read_bytes() == cert

    mailmoat("init", "--home", home, "--admin-password", "New-Pass-3", "--reset-admin-password")
    assert check_password(stored(home, "admin.password"), "New-Pass-3")
    assert not check_password(stored(home, "admin.password"), ADMIN_PASSWORD)
    assert stored(home, "quarantine.reinsertion_key") == before["quarantine.reinsertion_key"]


def test_init_generates_a_password_and_prints_it_once(tmp_path):
    home = tmp_path / "fresh"
    out = mailmoat("init", "--home", home).stdout
    (password,) = re.findall(r"^Administrator password \(shown once, log on as 'admin'\): "
                             r"(\S+)$", out, re.MULTILINE)
    assert len(password) >= 12
    hashed = stored(home, "admin.password")
    assert hashed != password and check_password(hashed, password)
    assert password.encode() not in (home / "mailmoat.db").read_bytes()
    again = mailmoat("init", "--home", home).stdout
    assert password not in again and "shown once" not in again


def test_init_refuses_a_bad_password(tmp_path):
    result = mailmoat("init", "--home", tmp_path / "h", "--admin-password", "x" * 33, expect=2)
    assert result.stderr == "admin.password: must be at most 32 characters\n"


# --- config get / set -------------------------------------------------------------------------

def test_get_all_masks_secrets(template):
    out = mailmoat("config", "get", "--home", template).stdout
    values = json.loads(out)
    assert list(values) == sorted(SCHEMA)
    assert values["smtp.port"] == 25
    assert values["admin.password"] == "***"
    assert values["quarantine.reinsertion_key"] == "***"
    assert values["admin.report_only.password"] is None
    assert values["ldap.password"] is None
    assert stored(template, "admin.password") not in out
    assert stored(template, "quarantine.reinsertion_key") not in out


def test_set_out_of_range_is_one_line_naming_the_key(home):
    result = mailmoat("config", "set", "smtp.port", "70000", "--home", home, expect=2)
    assert result.stderr.splitlines() == ["smtp.port: must be between 1 and 65535"]
    assert result.stdout == ""
    assert stored(home, "smtp.port") == 25


def test_set_validates_across_keys_and_by_type(home):
    result = mailmoat("config", "set", "https.port", "25", "--home", home, expect=2)
    assert result.stderr == "https.port: already used by smtp.port\n"
    assert stored(home, "https.port") == 8043

    assert mailmoat("config", "set", "smtp.port", "2525", "--home", home).stdout == \
        "smtp.port set\n"
    # A text key takes the bare argument; a list key takes JSON.
    mailmoat("config", "set", "smtp.notify_from", "alerts@example.com", "--home", home)
    assert stored(home, "smtp.port") == 2525
    assert stored(home, "smtp.notify_from") == "alerts@example.com"


def test_set_reads_a_value_too_long_for_the_command_line_from_standard_input(home):
    """Linux takes at most 128 KiB in one argument; the lists take 10 000 entries."""
    entries = [f"@d{n:05}.example" for n in range(10_000)]
    text = json.dumps(entries)
    assert len(text) > 128 * 1024
    environ = {k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"}
    result = subprocess.run([*MAILMOAT, "config", "set", "whitelist.custom", "--home", str(home)],
                            input=text + "\n", capture_output=True, text=True, env=environ,
                            timeout=60)
    assert (result.returncode, result.stdout) == (0, "whitelist.custom set\n"), result.stderr
    assert stored(home, "whitelist.custom") == entries
    refused = subprocess.run([*MAILMOAT, "config", "set", "whitelist.custom", "--home",
                              str(home)], input=json.dumps(entries + ["@one.more"]),
                             capture_output=True, text=True, env=environ, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr == "whitelist.custom: must have at most 10000 entries\n"


def test_mailmoat_home_environment_variable(template):
    result = mailmoat("config", "get", "smtp.port", env={"MAILMOAT_HOME": str(template)})
    assert result.stdout == "25\n"


def test_missing_home_is_a_clear_failure(tmp_path):
    missing = tmp_path / "nowhere"
    result = mailmoat("config", "get", "smtp.port", "--home", missing, expect=1)
    assert result.stderr == (f"mailmoat: no Mailmoat data home at {missing}; "
                             f"run `mailmoat init` first\n")
    result = mailmoat("migrate", "--home", missing, expect=1)
    assert "run `mailmoat init` first" in result.stderr
    assert not missing.exists()


def test_migrate(home):
    version = len(db.known_migrations())
    assert mailmoat("migrate", "--home", home).stdout == f"schema already at version {version}\n"
    with sqlite3.connect(home / "mailmoat.db") as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'future', 0)", (version + 1,))
    conn.close()
    result = mailmoat("config", "get", "smtp.port", "--home", home, expect=1)
    assert result.stderr.startswith(f"mailmoat: the database is at schema version "
                                    f"{version + 1}, newer than this Mailmoat")


# --- export / import --------------------------------------------------------------------------

def test_export_import_round_trip(template, home, tmp_path):
    change(home, {
        "smtp.port": 2525, "admin.report_only.password": "Report-Pass-1",
        "admin.report_only.enabled": True, "ldap.password": "bind secret",
        "rules.spam": [{"terms": ["cheap", "pills"], "match": "all"}],
        "disclaimer.text": "Line one\nLine «two»"})
    exported = mailmoat("config", "export", "--home", home).stdout
    assert json.loads(exported) == stored(home)

    target = tmp_path / "target"
    shutil.copytree(template, target)
    change(target, {"http.port": 8080, "admin.password": "Target-Pass-1"})
    backup = tmp_path / "settings.json"
    backup.write_text(exported, "utf-8")
    mailmoat("config", "import", backup, "--home", target)
    assert mailmoat("config", "export", "--home", target).stdout == exported

    assert check_password(stored(target, "admin.password"), ADMIN_PASSWORD)
    assert check_password(stored(target, "admin.report_only.password"), "Report-Pass-1")
    assert stored(target, "ldap.password") == "bind secret"


def test_import_with_errors_changes_nothing(home, tmp_path):
    before = stored(home)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"smtp.port": 2525, "smtp.colour": "blue", "http.port": 0,
                               "timezone": "Europe/Berlin", "scan.mode": "some"}), "utf-8")
    result = mailmoat("config", "import", bad, "--home", home, expect=2)
    assert result.stderr.splitlines() == [
        "smtp.colour: unknown setting",
        "http.port: must be between 1 and 65535",
        "scan.mode: must be one of all, include, exclude",
    ]
    assert stored(home) == before

    bad.write_text("{not json", "utf-8")
    result = mailmoat("config", "import", bad, "--home", home, expect=2)
    assert result.stderr == (f"mailmoat: {bad}: not valid JSON: Expecting property name "
                             f"enclosed in double quotes at line 1, column 2\n")
    bad.write_text('{"smtp.port": "25', "utf-8")          # truncated
    result = mailmoat("config", "import", bad, "--home", home, expect=2)
    assert result.stderr == (f"mailmoat: {bad}: not valid JSON: Unterminated string "
                             f"starting at line 1, column 15\n")
    assert stored(home) == before


def test_an_unexpected_error_says_where_it_happened(monkeypatch, capsys):
    """A bug in a command (the core's crash among them) prints the one-line message and the
    traceback to the operator's terminal or `mailmoat run`'s log; without it a crashed core
    cannot be diagnosed. Known failures stay one line (the tests above)."""
    from shared import cli

    def broken(_args):
        raise RuntimeError("the bug")

    monkeypatch.setitem(cli._REGISTRY, "broken", ("a broken command", lambda p: None, broken))
    monkeypatch.setattr(cli, "_load_commands", lambda: None)
    assert cli.main(["broken"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith("mailmoat: unexpected error: RuntimeError: the bug\n")
    assert "Traceback" in stderr and "in broken" in stderr


# --- queue list ------------------------------------------------------------------------------

def test_queue_list_shows_the_recipients_still_waiting_and_their_error(home):
    # delivery.md defect 8: every recipient was listed, and LAST ERROR could be the 550 of
    # a recipient already bounced while the message waited on a 451
    from shared.spool import Envelope, Spool, new_queue_id
    spool = Spool(DataHome(Path(home)).spool)
    queue_id = new_queue_id()
    incoming = spool.open_incoming(queue_id)
    incoming.write(b"Subject: s\r\n\r\nbody\r\n")
    envelope = Envelope.new(queue_id, "", ["gone@x.test", "ok@x.test", "busy@x.test",
                                           "new@y.test"], attempts=2)
    gone, ok, busy, _new = envelope.recipients
    gone.status, gone.last_error = "failed", "550 5.1.1 no such user"
    ok.status = "delivered"
    busy.status, busy.last_error = "deferred", "451 4.2.0 mailbox busy"
    spool.commit([incoming.prepare(envelope)], "slow")
    listing = mailmoat("queue", "list", "slow", "--home", home).stdout
    header, row = listing.splitlines()
    assert header.split()[4] == "RECIPIENTS"
    assert f"slow   {queue_id}" in row and "<>" in row
    assert "busy@x.test,new@y.test (+2 done)" in row
    assert row.endswith("451 4.2.0 mailbox busy")
    assert "gone@x.test" not in row and "ok@x.test" not in row and "550" not in row


def test_queue_list_names_the_first_recipients_of_a_long_list_and_counts_the_rest(home):
    """Interop tester: a message waiting for 50 recipients made a row of 800 characters."""
    from shared.spool import Envelope, Spool, new_queue_id
    spool = Spool(DataHome(Path(home)).spool)
    queue_id = new_queue_id()
    incoming = spool.open_incoming(queue_id)
    incoming.write(b"Subject: s\r\n\r\nbody\r\n")
    envelope = Envelope.new(queue_id, "a@b.test", [f"user{n}@x.test" for n in range(50)])
    envelope.recipients[0].status = "delivered"
    spool.commit([incoming.prepare(envelope)], "slow")
    _header, row = mailmoat("queue", "list", "slow", "--home", home).stdout.splitlines()
    assert "user1@x.test,user2@x.test,user3@x.test (+46 more) (+1 done)" in row
    assert "user4@x.test" not in row and len(row) < 200


def test_queue_list_corrupt_shows_what_the_core_set_aside_and_why(home):
    """Chaos finding 6: entries in spool/corrupt could not be listed with the tools."""
    from shared.spool import Envelope, Spool, new_queue_id
    spool = Spool(DataHome(Path(home)).spool)
    cut, unreadable = new_queue_id(), new_queue_id()
    for queue_id in (cut, unreadable):
        incoming = spool.open_incoming(queue_id)
        incoming.write(b"Subject: s\r\n\r\n" + b"x" * 300 + b"\r\n")
        spool.commit([incoming.prepare(Envelope.new(queue_id, "a@b.test", ["u@x.test"]))])
    with open(spool.message_path("fast", cut), "r+b") as message:
        message.truncate(10)
    (spool.root / "fast" / unreadable / "envelope.json").write_bytes(b"")
    assert sorted(n for _, n, _ in spool.recover().corrupt) == sorted([cut, unreadable])
    listing = mailmoat("queue", "list", "corrupt", "--home", home).stdout
    header, *rows = listing.splitlines()
    assert header.split()[:2] == ["QUEUE", "ID"]
    [cut_row] = [r for r in rows if cut in r]
    [unreadable_row] = [r for r in rows if unreadable in r]
    assert cut_row.startswith(f"corrupt  {cut}") and "a@b.test" in cut_row
    assert cut_row.endswith("the message file has 10 octets, its envelope says 316")
    assert unreadable_row.startswith("corrupt") and "envelope: not JSON" in unreadable_row
    listing = mailmoat("queue", "list", "--home", home).stdout     # not among the queues
    assert cut not in listing and unreadable not in listing
    assert "fast, slow, hold, corrupt" in mailmoat("queue", "list", "nowhere", "--home", home,
                                                   expect=2).stderr


def test_queue_list_into_a_closed_pipe_ends_quietly(home):
    """Regression (operations B10): `mailmoat queue list | head` printed a BrokenPipeError
    traceback."""
    environ = {k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"}
    process = subprocess.Popen([*MAILMOAT, "queue", "list", "--home", str(home)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ)
    process.stdout.close()                  # the reader has gone before the first line
    stderr = process.stderr.read().decode()
    assert (process.wait(timeout=60), stderr) == (0, "")


# --- expected failures are one line (operations report B1, B2, B10) ---------------------------

def _held_port():
    import socket
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder, holder.getsockname()[1]


def test_set_refuses_a_port_another_program_holds(home, tmp_path):
    """SPEC §3: "a port already in use by another program is refused with a warning and
    the old value kept" — `config set` and `config import` as the console does."""
    holder, taken = _held_port()
    with holder:
        for key in ("smtp.port", "http.port", "https.port"):
            result = mailmoat("config", "set", key, taken, "--home", home, expect=2)
            assert result.stderr == (f"{key}: port {taken} is in use by another program; "
                                     f"the old value is kept\n")
        backup = tmp_path / "settings.json"
        backup.write_text(json.dumps({"smtp.port": taken, "timezone": "Europe/Paris"}))
        result = mailmoat("config", "import", backup, "--home", home, expect=2)
        assert result.stderr.startswith(f"smtp.port: port {taken} is in use")
    assert (stored(home, "smtp.port"), stored(home, "http.port")) == (25, 8003)
    assert stored(home, "timezone") == "UTC"
    assert mailmoat("config", "set", "smtp.port", taken, "--home", home).stdout == \
        "smtp.port set\n"                   # free again


def _core_home(tmp_path):
    from tests.support.core import make_home
    return make_home(tmp_path / "core-home")


def test_core_whose_port_is_taken_says_so_in_one_line(tmp_path):
    from tests.support.core import set_settings
    home = _core_home(tmp_path)
    holder, taken = _held_port()
    with holder:
        set_settings(home, smtp__port=taken)
        result = mailmoat("core", "--home", home.root, expect=1)
    assert result.stderr == (f"mailmoat: cannot listen for SMTP on 127.0.0.1:{taken} "
                             f"(Address already in use)\n")


def test_a_second_core_on_one_data_home_exits_at_once(tmp_path):
    from tests.support.core import CoreProcess
    home = _core_home(tmp_path)
    with CoreProcess(home) as first:
        result = mailmoat("core", "--home", home.root, expect=1)
        assert result.stderr == (f"mailmoat: another Mailmoat core is running on this data "
                                 f"home (pid {first.process.pid})\n")
        assert (home.run / "core.running").read_text() == str(first.process.pid)


def _read_only(home: Path, *args) -> list[str]:
    """`args` run on a read-only bind mount of `home` (a private mount namespace)."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-m", "true"]).returncode != 0:
        pytest.skip("needs unshare -m (mount namespaces) to make a read-only data home")
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return [unshare, "-m", "sh", "-c", script, "sh", str(home), *MAILMOAT, *map(str, args)]


@pytest.mark.parametrize("command", [["config", "get", "smtp.port"], ["core"]])
def test_a_read_only_data_home_is_one_line(home, command):
    environ = {k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"}
    result = subprocess.run(_read_only(home, *command, "--home", home), capture_output=True,
                            text=True, env=environ, timeout=60)
    assert (result.returncode, result.stderr) == (
        1, f"mailmoat: cannot use {home / 'mailmoat.db'} (Read-only file system)\n")


@pytest.mark.parametrize("command", [
    ["config", "set", "smtp.port", "2525"], ["config", "import", "{backup}"],
    ["queue", "drop", "--hold", "--no-wait"], ["definitions", "install", "{backup}"]])
def test_a_command_that_writes_says_a_read_only_home_is_one_line(home, tmp_path, command):
    """clispec19 A1: a read-only home that holds the database's -wal and -shm (a copy of a
    running one: SQLite then opens it read-only without a word) made the commands that
    write an "attempt to write a readonly database" traceback; those that read still
    work."""
    backup = tmp_path / "settings.json"
    backup.write_text(json.dumps({"smtp.port": 2526}))
    environ = {k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"}
    holder = sqlite3.connect(home / "mailmoat.db")      # keeps -wal and -shm there
    try:
        holder.execute("SELECT COUNT(*) FROM settings").fetchone()
        assert (home / "mailmoat.db-shm").exists()
        args = [arg.format(backup=backup) for arg in command]
        result = subprocess.run(_read_only(home, *args, "--home", home), capture_output=True,
                                text=True, env=environ, timeout=60)
        assert (result.returncode, result.stderr) == (
            1, f"mailmoat: cannot use {home / 'mailmoat.db'} (Read-only file system)\n")
        read = subprocess.run(_read_only(home, "config", "get", "smtp.port", "--home", home),
                              capture_output=True, text=True, env=environ, timeout=60)
        assert (read.returncode, read.stdout) == (0, "25\n"), read.stderr
    finally:
        holder.close()
    assert stored(home, "smtp.port") == 25


def test_init_of_a_file_is_one_line(tmp_path):
    """clispec19 A2: a FileExistsError traceback."""
    afile = tmp_path / "afile"
    afile.write_text("")
    result = mailmoat("init", "--home", afile, expect=1)
    assert result.stderr == f"mailmoat: cannot use {afile} (Not a directory)\n"
    inner = tmp_path / "home"
    inner.mkdir()
    (inner / "spool").write_text("")
    result = mailmoat("init", "--home", inner, expect=1)
    assert result.stderr == f"mailmoat: cannot use {inner / 'spool'} (Not a directory)\n"


def test_output_that_cannot_be_written_is_not_blamed_on_the_data_home(template):
    """clispec19 C5: `config get > /dev/full` said "no space left on the data home's
    disk"."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    environ = {k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"}
    for command in (["config", "get"], ["config", "export"]):
        with open("/dev/full", "w") as full:
            result = subprocess.run([*MAILMOAT, *command, "--home", str(template)],
                                    stdout=full, stderr=subprocess.PIPE, text=True,
                                    env=environ, timeout=60)
        assert (result.returncode, result.stderr) == (
            1, "mailmoat: cannot write the output (No space left on device)\n")


def test_command_line_changes_leave_the_audit_trail_the_console_leaves(home, tmp_path):
    # object_modified events (they raise the config_change alert) for config set, config
    # import and a password reset, as for a change saved in the console; a no-op writes none
    def audit():
        conn = sqlite3.connect(Path(home) / "mailmoat.db")
        try:
            return [(row[0], row[1], json.loads(row[2])) for row in conn.execute(
                "SELECT info, rule, data FROM events WHERE action = 'object_modified' "
                "ORDER BY id")]
        finally:
            conn.close()

    mailmoat("config", "set", "smtp.max_incoming", "77", "--home", home)
    mailmoat("config", "set", "smtp.max_incoming", "77", "--home", home)     # unchanged
    exported = tmp_path / "settings.json"
    exported.write_text(json.dumps({"smtp.max_incoming": 78, "admin.emails": ["a@b.test"]}))
    mailmoat("config", "import", exported, "--home", home)
    mailmoat("init", "--reset-admin-password", "--admin-password", "N3w-secret-pw",
             "--home", home)
    [(info1, rule1, set_), (info2, rule2, imported), (info3, rule3, reset)] = audit()
    assert (info1, rule1) == ("mailmoat config set", "smtp.max_incoming")
    assert set_["changes"] == {"smtp.max_incoming": [SCHEMA["smtp.max_incoming"].default, 77]}
    assert set_["page"] == "cli"
    assert set_["user"] == __import__("pwd").getpwuid(os.geteuid()).pw_name
    assert (info2, rule2) == ("mailmoat config import", "admin.emails,smtp.max_incoming")
    assert imported["changes"]["smtp.max_incoming"] == [77, 78]
    assert (info3, rule3) == ("mailmoat init --reset-admin-password", "admin.password")
    assert reset["changes"] == {"admin.password": ["***", "***"]}      # never the password


def test_a_refused_definitions_install_writes_a_failed_definitions_updated_event(home,
                                                                                tmp_path):
    # guide Table 7-5: Definitions updated shows "the result of the updates
    # (Succeeded/Failed)". A refused install changes nothing, so no core saw anything to
    # report and the detail report showed only successes (events finding C5).
    import io
    import tarfile

    key = tmp_path / "signing.key"
    public = mailmoat("definitions", "keygen", "--out", key).stdout.rsplit(": ", 1)[-1].strip()
    source = tmp_path / "source"
    source.mkdir()
    (source / "mailmoat.ndb").write_text("Test.Refused:0:*:"
                                         + b"MAILMOAT-REFUSED-INSTALL".hex() + "\n")
    package = tmp_path / "refused.mmdef"
    mailmoat("definitions", "build", source, "--key", key, "--version", "2026-12-01",
             "--revision", "1", "--out", package)
    tampered = tmp_path / "tampered.mmdef"
    with tarfile.open(package) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    members["mailmoat.ndb"] = members["mailmoat.ndb"].replace(b"Refused", b"Altered")
    with tarfile.open(tampered, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    untrusted = mailmoat("definitions", "install", package, "--home", home, expect=1)
    mailmoat("config", "set", "definitions.trusted_keys", json.dumps([public]), "--home", home)
    mailmoat("definitions", "install", package, "--home", home)     # the core reports this one
    not_newer = mailmoat("definitions", "install", package, "--home", home, expect=1)
    altered = mailmoat("definitions", "install", tampered, "--home", home, expect=1)

    conn = sqlite3.connect(Path(home) / "mailmoat.db")
    try:
        rows = [(row[0], row[1], row[2], json.loads(row[3])) for row in conn.execute(
            "SELECT result, rule, info, data FROM events WHERE action = 'definitions_updated' "
            "ORDER BY id")]
    finally:
        conn.close()
    user = __import__("pwd").getpwuid(os.geteuid()).pw_name
    assert [(result, rule) for result, rule, _, _ in rows] == [
        ("failed", "definitions.install"), ("failed", "definitions.virus"),
        ("failed", "definitions.install")]
    for (_, _, info, data), refusal, name in zip(rows, (untrusted, not_newer, altered),
                                                 ("refused", "refused", "tampered")):
        reason = refusal.stderr.removeprefix("mailmoat: install refused: ").strip()
        assert info == f"install of {name}.mmdef refused: {reason}"
        assert data["user"] == user and data["package"].endswith(f"{name}.mmdef")
    assert "no trusted keys" in rows[0][2] and "was altered" in rows[2][2]
    # the signature held: the event names the version that was not newer
    assert (rows[1][3]["type"], rows[1][3]["version"], rows[1][3]["revision"]) == (
        "virus", "2026-12-01", 1)


# --- values the CLI once crashed on or took as meant (tester "settings") ----------------------

def _run_with_input(home, text, *args):
    environ = {k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"}
    return subprocess.run([*MAILMOAT, *args, "--home", str(home)], input=text,
                          capture_output=True, text=True, env=environ, timeout=60)


def test_a_lone_surrogate_is_refused_in_set_and_import_in_one_line(home, tmp_path):
    """Finding 1: "\\ud800" is valid JSON; stored, it crashed the pipeline, `config get` and
    `export`; in admin.password the hashing crashed."""
    before = stored(home)
    rule = "must be valid Unicode text: \\ud800 is half of a character (a lone UTF-16 surrogate)"
    result = mailmoat("config", "set", "admin.password", '"p\\ud800"', "--home", home, expect=2)
    assert result.stderr == f"admin.password: {rule}\n"
    result = mailmoat("config", "set", "disclaimer.text", '"Disclaimer \\ud800"', "--home", home,
                      expect=2)
    assert result.stderr == f"disclaimer.text: {rule}\n"
    backup = tmp_path / "settings.json"
    backup.write_text('{"heuristic.subject_prefix": "\\ud800", "smtp.max_incoming": 20}', "utf-8")
    result = mailmoat("config", "import", backup, "--home", home, expect=2)
    assert result.stderr == f"heuristic.subject_prefix: {rule}\n"
    assert stored(home) == before


def test_a_lone_surrogate_stored_before_is_read_and_exported(home):
    """An older release stored it: `config get` and `export` must still work (a backup)."""
    with sqlite3.connect(home / "mailmoat.db") as conn:
        conn.execute("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, 0)",
                     ("disclaimer.text", json.dumps("Disclaimer \ud800")))
    conn.close()
    assert mailmoat("config", "get", "disclaimer.text", "--home", home).stdout == \
        '"Disclaimer \ufffd"\n'
    exported = json.loads(mailmoat("config", "export", "--home", home).stdout)
    assert exported["disclaimer.text"] == "Disclaimer \ufffd"


def test_importing_an_export_of_a_mask_an_older_release_stored_says_what_to_do(home, tmp_path):
    """Upgrade16 finding 5: ldap.password "***" stored by an older release is in `config
    export` as stored, and the import of that export was told to use `config export`."""
    with sqlite3.connect(home / "mailmoat.db") as conn:
        conn.execute("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, 0)",
                     ("ldap.password", json.dumps("***")))
    conn.close()
    backup = tmp_path / "export.json"
    backup.write_text(mailmoat("config", "export", "--home", home).stdout, "utf-8")
    result = mailmoat("config", "import", backup, "--home", home, expect=2)
    assert result.stderr == ('ldap.password: "***" is how `config get` hides a secret, not its '
                             'value: give the real one (`config export` keeps secrets; an export '
                             'holds "***" only where an older release stored it as the value)\n')


def test_importing_the_mask_config_get_prints_is_refused(home, tmp_path):
    """Finding 3: a file made from `config get` output set the admin password to "***"."""
    before = stored(home)
    partial = tmp_path / "partial.json"
    got = json.loads(mailmoat("config", "get", "--home", home).stdout)
    partial.write_text(json.dumps({k: got[k] for k in ("admin.password", "smtp.max_incoming")}))
    result = mailmoat("config", "import", partial, "--home", home, expect=2)
    assert result.stderr == ('admin.password: "***" is how `config get` hides a secret, not its '
                             'value: give the real one (`config export` keeps secrets; an export '
                             'holds "***" only where an older release stored it as the value)\n')
    result = mailmoat("config", "set", "ldap.password", "***", "--home", home, expect=2)
    assert result.stderr.startswith('ldap.password: "***" is how `config get` hides a secret')
    assert stored(home) == before
    assert check_password(stored(home, "admin.password"), ADMIN_PASSWORD)


def test_match_everything_patterns_are_refused_by_config_set(home):
    """Findings 4 and 5: routing.local * opened the relay; subject.lines * dropped all mail."""
    result = mailmoat("config", "set", "routing.local", '[{"match": "*.*"}]', "--home", home,
                      expect=2)
    assert result.stderr == ("routing.local: '*.*' would make mail to every domain local, which "
                             "turns anti-relay off (an open relay)\n")
    result = mailmoat("config", "set", "subject.lines", '["?*"]', "--home", home, expect=2)
    assert result.stderr == "subject.lines: '?*' alone would block every message\n"
    assert stored(home, "routing.local") == [] and stored(home, "subject.lines") == []


def test_json_python_cannot_read_is_one_line_with_status_2(home, tmp_path):
    """Finding 6: an integer of more than 4300 digits inside a value, and JSON nested 100 000
    deep, were tracebacks with status 1."""
    before = stored(home)
    digits = "9" * 5000
    result = mailmoat("config", "set", "routing.default",
                      f'{{"host": "a.example", "port": {digits}}}', "--home", home, expect=2)
    assert result.stderr == "routing.default: port must be between 1 and 65535\n"
    big = tmp_path / "big.json"
    big.write_text(f'{{"smtp.max_incoming": {digits}}}', "utf-8")
    result = mailmoat("config", "import", big, "--home", home, expect=2)
    assert result.stderr == "smtp.max_incoming: must be between 1 and 1000\n"

    deep = "[" * 100_000 + "]" * 100_000
    result = _run_with_input(home, deep, "config", "set", "whitelist.custom")
    assert (result.returncode, result.stderr) == (2, (
        "whitelist.custom: must be JSON nested at most a few levels deep ([ ] and { } within "
        "each other)\n"))
    nested = tmp_path / "deep.json"
    nested.write_text('{"whitelist.custom": ' + deep + "}", "utf-8")
    result = mailmoat("config", "import", nested, "--home", home, expect=2)
    assert result.stderr == (f"mailmoat: {nested}: not valid JSON for settings: nested too "
                             "deeply ([ ] and { } within each other)\n")
    assert stored(home) == before
