"""The command line's bad input and audit trail (tester clispec19): a queue request checked
whole before it is written, one withdrawn recorded as such, a password that cannot be null,
argparse's messages from the command they are about, and the smaller points. The CLI runs in
this process (shared.cli.main); the commands that must be seen from outside (a read-only
home, a full stdout) are in test_cli.py."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import types

import pytest

from shared import db
from shared import definitions as defs
from shared.cli import main
from shared.events import Action
from shared.settings import check_password
from shared.spool import Spool
from tests.support.core import ADMIN_PASSWORD, make_home, stored_settings
from tests.support.spool import put_message
from tests.support.waiting import events_of, wait_for


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_home(tmp_path_factory.mktemp("cli19") / "home")


@pytest.fixture
def home(template, tmp_path):
    shutil.copytree(template.root, tmp_path / "home")
    return type(template)(tmp_path / "home")


def _requests(home) -> list:
    conn = db.connect(home.db)
    try:
        return conn.execute("SELECT * FROM commands ORDER BY id").fetchall()
    finally:
        conn.close()


def _run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


# --- queue requests: bad input asks for nothing (B3) ----------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--id", "NOSUCH1"], "mailmoat: not in the hold queue: NOSUCH1; nothing was requested\n"),
    (["--id", ""], "mailmoat: --id: must not be empty\n"),
    (["--wait", "-1"], "mailmoat: --wait: must be a number of seconds above 0\n"),
    (["--wait", "0"], "mailmoat: --wait: must be a number of seconds above 0\n"),
    (["--wait", "nan"], "mailmoat: --wait: must be a number of seconds above 0\n"),
])
def test_a_queue_request_with_bad_input_is_refused_before_it_is_written(home, capsys, extra,
                                                                         message):
    # a missing id went to stdout with status 1 after a request was written; --wait -1
    # wrote a request and withdrew it at once
    held = put_message(Spool(home.spool), "hold", hold_reason="suspect_message")
    status, out, err = _run(capsys, "queue", "reprocess", "--hold", *extra, "--home",
                            home.root)
    assert (status, out, err) == (2, "", message)
    assert _requests(home) == [] and events_of(home, Action.OBJECT_MODIFIED) == []
    assert list(Spool(home.spool).list("hold")) == [held]


def test_ids_are_taken_whole_or_not_at_all(home, capsys):
    # "1 message(s) dropped; not in the hold queue: NOSUCH" with status 0: a typing error
    # among the ids, and the others were acted on
    spool = Spool(home.spool)
    held = [put_message(spool, "hold", hold_reason="suspect_message") for _ in range(2)]
    status, out, err = _run(capsys, "queue", "drop", "--hold", "--id", held[0], "--id",
                            "NOSUCH", "--id", held[1], "--id", "ALSO", "--no-wait", "--home",
                            home.root)
    assert (status, out) == (2, "")
    assert err == "mailmoat: not in the hold queue: NOSUCH, ALSO; nothing was requested\n"
    assert _requests(home) == []
    status, out, _ = _run(capsys, "queue", "drop", "--hold", "--id", held[0], "--id", held[1],
                          "--no-wait", "--home", home.root)
    assert (status, out) == (0, "request 1 queued for the core\n")
    assert json.loads(_requests(home)[0]["args"])["ids"] == held


@pytest.mark.parametrize("argv, message", [
    (["list", "fast", "--hold"], "mailmoat: --hold: `queue list` lists the queue it is given, "
                                 "here fast; for the hold queue: queue list hold\n"),
    (["reprocess", "slow", "--hold"], "mailmoat: slow: `queue reprocess` takes no queue: it "
                                      "acts on the hold queue (--hold)\n"),
    (["drop", "hold", "--hold", "--no-wait"], "mailmoat: hold: `queue drop` takes no queue: "
                                              "it acts on the hold queue (--hold)\n"),
])
def test_a_queue_named_against_the_action_is_refused(home, capsys, argv, message):
    put_message(Spool(home.spool), "fast")
    assert _run(capsys, "queue", *argv, "--home", home.root) == (2, "", message)
    assert _requests(home) == []


def test_list_with_hold_lists_the_hold_queue(home, capsys):
    spool = Spool(home.spool)
    fast, held = put_message(spool, "fast"), put_message(spool, "hold", hold_reason="x")
    status, out, _ = _run(capsys, "queue", "list", "--hold", "--home", home.root)
    assert status == 0 and held in out and fast not in out


# --- a withdrawn request is recorded as withdrawn (B4) --------------------------------------

def test_a_withdrawn_request_leaves_a_withdrawn_event_after_its_request(home, capsys):
    # the audit trail said an administrator dropped the hold queue, and nothing said the
    # request was withdrawn with nothing done
    put_message(Spool(home.spool), "hold", hold_reason="suspect_message")
    status, out, err = _run(capsys, "queue", "drop", "--hold", "--wait", "0.3", "--home",
                            home.root)
    assert (status, out) == (1, "")
    assert err == ("mailmoat: request 1 withdrawn: the core did not take it up within 0.3 s "
                   "(is `mailmoat core` running?); nothing was changed\n")
    asked, withdrawn = events_of(home, Action.OBJECT_MODIFIED)
    assert (asked["result"], asked["info"]) == ("saved", "mailmoat queue drop --hold")
    assert withdrawn["result"] == "withdrawn"
    assert withdrawn["info"] == ("mailmoat queue drop --hold (request 1 withdrawn: the core did "
                                 "not take it up within 0.3 s (is `mailmoat core` running?); "
                                 "nothing was changed)")
    assert json.loads(withdrawn["data"]) == json.loads(asked["data"])
    assert json.loads(asked["data"])["command_id"] == 1
    [request] = _requests(home)
    assert request["state"] == "failed" and request["result"].startswith("withdrawn")


def test_a_request_taken_up_and_put_back_at_the_core_s_stop_is_withdrawn_as_such(
        home, capsys, monkeypatch):
    """review24a C1: a hold action the core took up waits for its look at hold/ after the
    start (core/control.py); the CLI sees it through past --wait, and a stop of the core
    puts it back to pending. Withdrawn then, it said "the core did not take it up within
    1 s" after a wait of many seconds. The core's part is played by the CLI's own clock
    and sleeps: each sleep is the next step, so what the CLI saw does not hang on timing."""
    import core.queue_commands
    put_message(Spool(home.spool), "hold", hold_reason="suspect_message")
    now = [0.0]
    steps = [("running", 5.0),      # the core takes it up; the wait's 1 s goes by
             ("pending", 0.0)]      # the core stops before carrying it out: put back

    def step(_seconds):
        state, later = steps.pop(0)
        conn = db.connect(home.db)
        try:
            conn.execute("UPDATE commands SET state = ?", (state,))
        finally:
            conn.close()
        now[0] += later

    monkeypatch.setattr(core.queue_commands, "time", types.SimpleNamespace(
        time=time.time, monotonic=lambda: now[0], sleep=step))
    status, out, err = _run(capsys, "queue", "drop", "--hold", "--wait", "1", "--home",
                            home.root)
    assert steps == [] and (status, out) == (1, "")
    why = "the core took it up but stopped before carrying it out; nothing was changed"
    assert err == f"mailmoat: request 1 withdrawn: {why}\n"
    asked, withdrawn = events_of(home, Action.OBJECT_MODIFIED)
    assert withdrawn["info"] == f"mailmoat queue drop --hold (request 1 withdrawn: {why})"
    [request] = _requests(home)
    assert tuple(request[key] for key in ("state", "result")) == (
        "failed", "withdrawn by the requester after 5.0 s")


# --- Ctrl-C while waiting: withdrawn when not taken up, else left to the core -----------------
# It ended the wait with status 0 and no word, the request left pending for a core started
# later to act on whatever was in hold by then.

def _interrupted_wait(home, *, taken_up: bool, signals=(signal.SIGINT,),
                      ignoring_ctrl_c: bool = False) -> tuple[int, str]:
    """`mailmoat queue drop --hold` as a process of its own, sent `signals` (Ctrl-C) once
    its request is written — after the request is marked as the core's when `taken_up`;
    started ignoring SIGINT, as a background job of a script is, when `ignoring_ctrl_c`."""
    waiting = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "queue", "drop", "--hold", "--wait", "120",
         "--home", str(home.root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as a terminal's foreground command, or a script's background job, starts: a test
        # run started in the background (CI's, say) would otherwise pass its own ignored
        # SIGINT on, and Ctrl-C would rightly be ignored
        preexec_fn=lambda: signal.signal(
            signal.SIGINT, signal.SIG_IGN if ignoring_ctrl_c else signal.SIG_DFL))
    try:
        assert wait_for(lambda: _requests(home), timeout=30)
        if taken_up:
            conn = db.connect(home.db)
            try:
                conn.execute("UPDATE commands SET state = 'running'")
            finally:
                conn.close()
        for signum in signals:
            waiting.send_signal(signum)
        out, err = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
        waiting.wait()
    assert out == ""
    return waiting.returncode, err


def test_ctrl_c_before_the_core_takes_a_request_up_withdraws_it(home):
    held = put_message(Spool(home.spool), "hold", hold_reason="suspect_message")
    status, err = _interrupted_wait(home, taken_up=False)
    assert (status, err) == (1, "mailmoat: request 1 withdrawn: the wait was interrupted "
                                "before the core took it up; nothing was changed\n")
    [request] = _requests(home)
    assert request["state"] == "failed" and request["result"].startswith("withdrawn")
    asked, withdrawn = events_of(home, Action.OBJECT_MODIFIED)
    assert (asked["result"], withdrawn["result"]) == ("saved", "withdrawn")
    assert list(Spool(home.spool).list("hold")) == [held]


def test_ctrl_c_once_the_core_carries_a_request_out_leaves_it_to_the_core(home):
    put_message(Spool(home.spool), "hold", hold_reason="suspect_message")
    status, err = _interrupted_wait(home, taken_up=True)
    assert (status, err) == (1, "mailmoat: request 1 is being carried out by the core; only "
                                "the wait for its result was interrupted\n")
    [request] = _requests(home)
    assert request["state"] == "running"
    [asked] = events_of(home, Action.OBJECT_MODIFIED)
    assert asked["result"] == "saved"


def test_a_kill_before_the_core_takes_a_request_up_withdraws_it(home):
    # review20a R4: `timeout`, a service manager's stop or a closed SSH session ended the
    # wait with no word and left the request for a later core
    put_message(Spool(home.spool), "hold", hold_reason="suspect_message")
    status, err = _interrupted_wait(home, taken_up=False, signals=(signal.SIGTERM,))
    assert (status, err) == (1, "mailmoat: request 1 withdrawn: the wait was stopped "
                                "(SIGTERM) before the core took it up; nothing was changed\n")
    [request] = _requests(home)
    assert request["state"] == "failed"


def test_a_background_job_keeps_ignoring_ctrl_c(home):
    # review20a R3: a script's `&` job starts with SIGINT ignored so that the script's
    # Ctrl-C does not reach it; the wait took it over and withdrew the request
    put_message(Spool(home.spool), "hold", hold_reason="suspect_message")
    status, err = _interrupted_wait(home, taken_up=False, ignoring_ctrl_c=True,
                                    signals=(signal.SIGINT, signal.SIGTERM))
    assert (status, err) == (1, "mailmoat: request 1 withdrawn: the wait was stopped "
                                "(SIGTERM) before the core took it up; nothing was changed\n")


def test_a_wait_off_the_main_thread_ends_at_its_deadline(home, capsys):
    # review20a R3: signal.signal raised ValueError there, before anything was asked
    put_message(Spool(home.spool), "hold", hold_reason="suspect_message")
    statuses = []
    thread = threading.Thread(target=lambda: statuses.append(main(
        ["queue", "drop", "--hold", "--wait", "0.3", "--home", str(home.root)])))
    thread.start()
    thread.join(60)
    assert statuses == [1]
    assert "withdrawn: the core did not take it up within 0.3 s" in capsys.readouterr().err


def test_a_request_that_cannot_be_withdrawn_under_a_lock_is_said_to_be_pending(
        home, capsys, monkeypatch):
    # review20b R1: the boundary said "locked … nothing was changed: try again", and the
    # core carried the request out once the lock went; given again, done twice
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 300)
    put_message(Spool(home.spool), "hold", hold_reason="suspect_message")
    locked, release = threading.Event(), threading.Event()

    def lock_once_requested():
        assert wait_for(lambda: _requests(home), timeout=30)
        other = sqlite3.connect(home.db, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(60)
        other.execute("ROLLBACK")
        other.close()

    holder = threading.Thread(target=lock_once_requested)
    holder.start()
    try:
        # the wait gives the holder time to see the request and lock on a loaded machine
        # (with 1 s it once withdrew first)
        status = main(["queue", "drop", "--hold", "--wait", "3", "--home", str(home.root)])
    finally:
        release.set()
        holder.join(60)
    assert locked.is_set() and status == 1
    err = capsys.readouterr().err
    assert err.startswith("mailmoat: request 1 is saved but could not be followed or "
                          "withdrawn: mailmoat.db is locked by another program"), err
    assert "do not give it again" in err
    [request] = _requests(home)
    assert request["state"] == "pending"


# --- admin.password is never null (B1) and init checks it first (B2) ------------------------

NULL_PASSWORD = ("admin.password: must be set: without it the administrator cannot log on "
                 "(give a new password, or use `mailmoat init --reset-admin-password`)\n")


def test_the_administrator_password_cannot_be_set_to_null(home, capsys, tmp_path):
    # `config set admin.password null` was "admin.password set": nobody could log on
    assert _run(capsys, "config", "set", "admin.password", "null", "--home", home.root) == (
        2, "", NULL_PASSWORD)
    backup = tmp_path / "settings.json"
    backup.write_text(json.dumps({"admin.password": None, "smtp.max_incoming": 20}))
    assert _run(capsys, "config", "import", backup, "--home", home.root) == (
        2, "", NULL_PASSWORD)
    settings = stored_settings(home)
    assert check_password(settings["admin.password"], ADMIN_PASSWORD)
    assert settings["smtp.max_incoming"] == 15
    # the word itself is a password, as '"null"' is the word for every text key
    assert _run(capsys, "config", "set", "admin.password", '"null"', "--home", home.root)[0] == 0
    assert check_password(stored_settings(home)["admin.password"], "null")


@pytest.mark.parametrize("password, rule", [
    ("", "must not be empty"), ("x" * 33, "must be at most 32 characters")])
def test_a_refused_init_leaves_no_home_behind(tmp_path, capsys, password, rule):
    # the directories and a database without a password were left, and the next init
    # called the home "already initialised"
    root = tmp_path / "new"
    assert _run(capsys, "init", "--home", root, "--admin-password", password) == (
        2, "", f"admin.password: {rule}\n")
    assert not root.exists()


# --- argparse says what is wrong where it is wrong (C1) -------------------------------------

@pytest.mark.parametrize("argv, usage, error", [
    (["--bogus"], "usage: mailmoat [-h]", "mailmoat: error: unrecognized arguments: --bogus"),
    (["config", "get", "--bogus"], "usage: mailmoat config get [-h]",
     "mailmoat config get: error: unrecognized arguments: --bogus"),
    (["config", "get", "smtp.port", "extra"], "usage: mailmoat config get [-h]",
     "mailmoat config get: error: unrecognized arguments: extra"),
    (["config"], "usage: mailmoat config [-h]",
     "mailmoat config: error: the following arguments are required: config_command"),
    ([], "usage: mailmoat [-h]", "mailmoat: error: the following arguments are required: "
                                 "command"),
])
def test_a_bad_command_line_is_named_by_the_command_it_is_for(capsys, argv, usage, error):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and err.rstrip("\n").endswith(error), err


# --- smaller points (C2, C6) ----------------------------------------------------------------

def test_definitions_status_of_no_home_says_so(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    for action in ("status", "rollback"):
        assert _run(capsys, "definitions", action, "--home", missing) == (
            1, "", f"mailmoat: no Mailmoat data home at {missing}; run `mailmoat init` "
                   f"first\n")


def test_an_install_of_what_is_no_package_is_one_line_in_its_message_and_event(
        home, capsys, tmp_path):
    key = tmp_path / "signing.key"
    _run(capsys, "definitions", "keygen", "--out", key)
    public = defs.public_key_b64(defs.load_private_key(str(key)))
    assert _run(capsys, "config", "set", "definitions.trusted_keys", json.dumps([public]),
                "--home", home.root)[0] == 0
    not_a_package = tmp_path / "k1.pem"
    not_a_package.write_text("not a package\n")
    status, out, err = _run(capsys, "definitions", "install", not_a_package, "--home",
                            home.root)
    assert (status, out) == (1, "")
    assert err == (f"mailmoat: install refused: {not_a_package}: not a definitions package "
                   f"(not a tar archive, compressed or not)\n")
    [event] = events_of(home, Action.DEFINITIONS_UPDATED)
    assert "\n" not in event["info"] and event["info"].endswith("compressed or not)")


def test_build_names_a_missing_key_file_as_other_commands_name_a_file(tmp_path, capsys):
    source = tmp_path / "source"
    source.mkdir()
    (source / "mailmoat.ndb").write_text("Test.A:0:*:4141\n")
    missing = tmp_path / "nonexist.pem"
    assert _run(capsys, "definitions", "build", source, "--key", missing) == (
        2, "", f"mailmoat: build: {missing}: No such file or directory\n")


def test_addresses_differing_only_in_letter_case_are_one_address(home, capsys):
    # every alert went twice to ["A@B.TEST", "a@b.test"]
    status, _, err = _run(capsys, "config", "set", "admin.emails",
                          '["A@B.TEST", "x@y.test", "a@b.test"]', "--home", home.root)
    assert (status, err) == (2, "admin.emails: entry 3 repeats entry 1: letter case is "
                                "ignored\n")
    assert stored_settings(home)["admin.emails"] == []


def test_a_setting_that_needs_a_restart_says_so_when_set_or_imported(home, capsys, tmp_path):
    # as the console says beside the field; `config set` said only "scan.temp_dir set"
    assert _run(capsys, "config", "set", "scan.temp_dir", str(tmp_path), "--home",
                home.root) == (0, "scan.temp_dir set (takes effect when Mailmoat restarts)\n",
                               "")
    backup = tmp_path / "settings.json"
    backup.write_text(json.dumps({"scan.temp_dir": None, "smtp.max_incoming": 20}))
    assert _run(capsys, "config", "import", backup, "--home", home.root)[1] == (
        "imported 2 settings (2 changed); scan.temp_dir: takes effect when Mailmoat "
        "restarts\n")
    assert _run(capsys, "config", "set", "smtp.max_incoming", "21", "--home", home.root)[1] \
        == "smtp.max_incoming set\n"


def test_a_change_while_another_program_holds_the_database_is_one_line(home, capsys,
                                                                       monkeypatch):
    """scale19: `config set` under another program's write lock printed a traceback."""
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 100)
    holder = db.connect(home.db)
    try:
        holder.execute("BEGIN IMMEDIATE")
        status, out, err = _run(capsys, "config", "set", "smtp.port", "2526", "--home", home.root)
    finally:
        holder.rollback()
        holder.close()
    assert status == 1 and out == ""
    assert err.startswith("mailmoat: mailmoat.db is locked by another program") and \
        err.count("\n") == 1, err
    assert stored_settings(home)["smtp.port"] != 2526
