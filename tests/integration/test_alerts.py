"""The alert engine in the core (SPEC §3 Alerts, §6): events of both processes -> enabled
alerts mailed to admin.emails through the spool; resource checks; notification metatags."""

from __future__ import annotations

import email
import functools
import json
from email import policy
from pathlib import Path

import pytest
import trio

import core.delivery.deliver as deliver_module
from core.app import run_core
from core.delivery import Timeouts
from core.notify import (AlertEngine, Notifier, ResourceMonitor, alert_key, compose_mail,
                         fill_metatags, metatags)
from core.pipeline.findings import Finding
from core.pipeline.run import WorkerOutcome
from core.pipeline.verdict import decide
from shared import db
from shared.events import Action, EventWriter
from shared.guide_texts import ALERT_TEXTS, DEFAULT_NOTIFY_ADMIN_BODY
from shared.settings import defaults
from shared.spool import Envelope, Spool
from tests.support.core import CoreProcess, free_port, make_home, routed_home, stored_settings
from tests.support.scripted_server import command_lines, serve_on_loopback
from tests.support.waiting import until




def _console_event(home, action, **fields):
    writer = EventWriter(home.db, "console")
    writer.record(action, **fields)
    writer.close()


def _all_events(home):
    conn = db.connect(home.db)
    try:
        return conn.execute("SELECT * FROM events ORDER BY id").fetchall()
    finally:
        conn.close()


def _events(home, action):
    conn = db.connect(home.db)
    try:
        return conn.execute("SELECT * FROM events WHERE action = ?", (str(action),)).fetchall()
    finally:
        conn.close()


async def test_console_event_raises_an_alert_mailed_to_admins(tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, admin__emails=["admin@local.test", "ops@local.test"])
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(lambda: _console_event(
        home, Action.UNAUTHORIZED_ACCESS, client_ip="192.0.2.9", info="report -> /filtering"))
    [mail] = await trio.to_thread.run_sync(sink.wait_for, 1)
    parsed = email.message_from_bytes(mail.data, policy=policy.default)
    subject, body = ALERT_TEXTS["unauthorized_access"]
    assert parsed["Subject"] == subject and body in parsed.get_content()
    assert "192.0.2.9" in parsed.get_content()
    assert sorted(mail.recipients) == ["admin@local.test", "ops@local.test"]
    assert mail.sender == ""
    await core.events.aflush()
    [sent] = _events(home, Action.ALERT_SENT)
    assert sent["rule"] == "alerts.unauthorized_access"
    core.cancel_scope.cancel()


async def test_disabled_alert_or_no_admin_address_sends_nothing(tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, admin__emails=["admin@local.test"],
                 alerts__unauthorized_access=False)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(lambda: _console_event(home, Action.UNAUTHORIZED_ACCESS))
    await trio.sleep(2.5)
    assert sink.messages == []
    core.cancel_scope.cancel()


async def test_low_disk_event_is_alerted_with_the_directory(tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, admin__emails=["admin@local.test"])
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(lambda: _console_event(
        home, Action.LOW_DISK, data={"directory": "mail queuing"}, info="3% free"))
    [mail] = await trio.to_thread.run_sync(sink.wait_for, 1)
    parsed = email.message_from_bytes(mail.data, policy=policy.default)
    assert parsed["Subject"] == "Low Disk Space Threshold Exceeded"
    assert "The mail queuing directory is running dangerously low" in parsed.get_content()
    core.cancel_scope.cancel()


class _NoEvents:
    def record(self, *a, **k):
        pass


async def _engine(home, sent: list) -> AlertEngine:
    """An alert engine of `home` whose mails go into `sent`, its cursor loaded as at start."""
    async def submit(sender, recipients, data, kind):
        sent.append(data)
        return "Q"

    engine = AlertEngine(home.db, home.run, lambda: stored_settings(home), _NoEvents(), submit,
                         lambda: "mm.test")
    await engine.load()
    return engine


async def test_engine_cursor_survives_restart_without_repeats(tmp_path):
    home = make_home(tmp_path, admin__emails=["a@local.test"], alerts__config_change=True)
    sent: list = []
    engine = await _engine(home, sent)
    _console_event(home, Action.OBJECT_MODIFIED, info="setup")
    _console_event(home, Action.OBJECT_MODIFIED, info="content")
    assert await engine.poll_once() == ["Q"]           # two events, one mail
    again = await _engine(home, sent)
    assert await again.poll_once() == []
    assert len(sent) == 1 and b"Configuration Change" in sent[0]


def test_alert_keys_of_table_3_2():
    def row(action, rule=None, result=None, data=None):
        import json
        return {"action": action, "rule": rule, "result": result,
                "data": json.dumps(data) if data else None}
    assert alert_key(row("held", "suspect_message")) == "suspect_message"
    assert alert_key(row("held", "scan.unprocessable")) is None
    assert alert_key(row("failed_logon")) == "failed_logons"
    assert alert_key(row("protocol_violation")) == "smtp_protocol_violation"
    assert alert_key(row("service_start_improper")) == "service_start_improper"
    assert alert_key(row("service_started")) == "service_start"
    # an smtp.listen address that could be bound again: no "Service Start" mail (review 16)
    assert alert_key(row("service_started", "smtp.listen")) is None
    assert alert_key(row("scan_error", "spool.corrupt")) == "suspect_message"
    assert alert_key(row("scan_error", "scan.unprocessable")) == "scan_error"
    assert set(ALERT_TEXTS) >= {"low_disk", "low_memory", "scan_error", "config_change"}


# --- SMTP Connection Failure: real next hops (alerts finding A1) -----------------------------
# Table 3-2: "The SMTP server that [the gateway] is trying to contact is not available". The
# rule read whether the event named a host; a refused connection, a 421 greeting and a
# timeout all named the one tried, so none of them raised it.

async def _closes_at_once(task_status=trio.TASK_STATUS_IGNORED):
    async def handle(stream):
        await stream.aclose()
    await serve_on_loopback(handle, task_status)


async def _never_greets(task_status=trio.TASK_STATUS_IGNORED):
    async def handle(stream):
        while await stream.receive_some(4096):
            pass
    await serve_on_loopback(handle, task_status)


async def _drops_after_data(task_status=trio.TASK_STATUS_IGNORED):
    """Takes the session and the recipients, then closes once the content begins."""
    async def handle(stream):
        await stream.send_all(b"220 flaky.test ESMTP\r\n")
        async for line in command_lines(stream):
            verb = line.split(b" ")[0].upper()
            if verb == b"EHLO":
                await stream.send_all(b"250 flaky.test\r\n")
            elif verb in (b"MAIL", b"RCPT"):
                await stream.send_all(b"250 2.1.0 ok\r\n")
            elif verb == b"DATA":
                await stream.send_all(b"354 go ahead\r\n")
            else:
                await stream.aclose()
                return
    await serve_on_loopback(handle, task_status)


def _next_hop_home(tmp_path, sink, port, **changes):
    """A home whose admin is at the sink and whose down.test goes to 127.0.0.1:`port`."""
    return make_home(tmp_path, admin__emails=["admin@local.test"],
                     alerts__smtp_connection_failure=True, routing__local=[
                         {"match": "local.test", "relay": "127.0.0.1", "port": sink.port},
                         {"match": "down.test", "relay": "127.0.0.1", "port": port}],
                     **changes)


def _send_from_null_sender(port, recipient):
    """The null sender: no delay notice or bounce joins the alerts at the sink."""
    import smtplib
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("", [recipient], b"Subject: hello\r\n\r\nhi\r\n")


async def _alert_sent(home, core, rule):
    """The alert_sent events of `rule` once there is one (the flush awaited: a blocking
    `core.events.flush()` in the predicate held up the trio thread the core runs on)."""
    return await until(lambda: [r for r in _events(home, Action.ALERT_SENT)
                                if r["rule"] == rule], timeout=30, flush=core.events.aflush)


@pytest.mark.parametrize("next_hop, deferral", [
    ("refuses the connection", "Connection refused"),
    ("greets with 421", "greeted with 421 4.3.2 Service not available"),
    ("closes before the greeting", "closed the connection"),
])
async def test_a_next_hop_that_is_not_available_raises_smtp_connection_failure(
        tmp_path, sink, make_sink, nursery, next_hop, deferral):
    if next_hop == "refuses the connection":
        port = free_port()                                  # nothing listens there
    elif next_hop == "greets with 421":
        busy = make_sink()
        busy.greeting = (421, "4.3.2 Service not available")
        port = busy.port
    else:
        port = await nursery.start(_closes_at_once)
    home = _next_hop_home(tmp_path, sink, port)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_from_null_sender, core.smtp_addresses[0][1],
                                  "x@down.test")
    [sent] = await _alert_sent(home, core, "alerts.smtp_connection_failure")
    [deferred, *_] = _events(home, Action.DEFERRED)
    assert json.loads(deferred["data"])["status"] == "4.4.1", deferred["info"]
    [mail] = await trio.to_thread.run_sync(sink.wait_for, 1)
    parsed = email.message_from_bytes(mail.data, policy=policy.default)
    assert mail.recipients == ["admin@local.test"]
    assert parsed["Subject"] == ALERT_TEXTS["smtp_connection_failure"][0]
    assert deferral in parsed.get_content()
    core.cancel_scope.cancel()


async def test_a_next_hop_that_never_greets_raises_smtp_connection_failure(
        tmp_path, sink, nursery, monkeypatch):
    # RFC 5321 §4.5.3.2.1 gives the greeting 5 minutes and no setting shortens it: the
    # core's deliverer gets a Timeouts with half a second instead
    monkeypatch.setattr(deliver_module, "Timeouts", functools.partial(Timeouts, greeting=0.5))
    port = await nursery.start(_never_greets)
    home = _next_hop_home(tmp_path, sink, port)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_from_null_sender, core.smtp_addresses[0][1],
                                  "x@down.test")
    await _alert_sent(home, core, "alerts.smtp_connection_failure")
    [mail] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert f"timeout waiting for 127.0.0.1[127.0.0.1]:{port}" in email.message_from_bytes(
        mail.data, policy=policy.default).get_content()
    core.cancel_scope.cancel()


@pytest.mark.parametrize("next_hop, action, status", [
    ("refuses the recipient", Action.DELIVERY_FAILED, "5.1.1"),
    # its own 4.4.1 tells of a failure beyond it, not of it
    ("answers the recipient 4.4.1", Action.DEFERRED, "4.4.1"),
    ("drops the connection in the content", Action.DEFERRED, "4.4.2"),
])
async def test_a_next_hop_that_is_there_raises_no_smtp_connection_failure(
        tmp_path, sink, nursery, next_hop, action, status):
    if next_hop == "refuses the recipient":
        sink.rcpt_replies["x@down.test"] = (550, "5.1.1 no such user")
        port = sink.port
    elif next_hop == "answers the recipient 4.4.1":
        sink.rcpt_replies["x@down.test"] = (450, "4.4.1 no answer from the next server")
        port = sink.port
    else:
        port = await nursery.start(_drops_after_data)
    home = _next_hop_home(tmp_path, sink, port)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_from_null_sender, core.smtp_addresses[0][1],
                                  "x@down.test")

    [first, *_] = await until(lambda: _events(home, action), timeout=30,
                              flush=core.events.aflush)
    assert json.loads(first["data"])["status"] == status
    # a later alert, mailed by the same poll or a later one than the outcome's would be
    await trio.to_thread.run_sync(lambda: _console_event(home, Action.UNAUTHORIZED_ACCESS))
    await _alert_sent(home, core, "alerts.unauthorized_access")
    assert [r["rule"] for r in _events(home, Action.ALERT_SENT)] == [
        "alerts.unauthorized_access"]
    core.cancel_scope.cancel()


def test_resource_monitor_fires_once_per_crossing(tmp_path):
    recorded = []

    class Events:
        def record(self, action, **fields):
            recorded.append((action, fields))

    level = {"disk": 0.05, "mem": 0.5}
    monitor = ResourceMonitor(Events(), {"mail queuing": tmp_path},
                              disk_free=lambda path: level["disk"],
                              memory_free=lambda: level["mem"])
    monitor.check_once()
    monitor.check_once()
    assert [a for a, _ in recorded] == [Action.LOW_DISK]
    assert recorded[0][1]["data"]["directory"] == "mail queuing"
    level.update(disk=0.5, mem=0.05)
    monitor.check_once()
    level.update(disk=0.05)
    monitor.check_once()
    assert [a for a, _ in recorded] == [Action.LOW_DISK, Action.LOW_MEMORY, Action.LOW_DISK]


async def test_resource_monitor_looks_at_once_when_asked_and_once_a_second_at_most():
    """diskfull21 B2: a disk that filled within the monitor's minute got its low_disk event
    only once SQLite was full. SMTP's refusal for space asks it to look at once
    (check_soon); asked a hundred times, it still looks once a second at most."""
    recorded, looks = [], []

    class Events:
        def record(self, action, **fields):
            recorded.append(action)

    level = {"disk": 0.5}

    def disk_free(path):
        looks.append(level["disk"])
        return level["disk"]

    monitor = ResourceMonitor(Events(), {"mail queuing": Path(".")}, disk_free=disk_free,
                              memory_free=lambda: 0.5, interval_seconds=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        await until(lambda: looks, timeout=10)          # the look at start
        level["disk"] = 0.01
        monitor.check_soon()
        await until(lambda: recorded, timeout=10)       # not an hour later
        assert recorded == [Action.LOW_DISK]
        before = len(looks)
        for _ in range(100):
            monitor.check_soon()
        await trio.sleep(0.3)
        assert len(looks) - before <= 1
        await until(lambda: len(looks) == before + 1, timeout=10)   # one look for them all
        nursery.cancel_scope.cancel()
    assert recorded == [Action.LOW_DISK]                # once per crossing, as ever


def test_notification_metatags_are_filled():
    envelope = Envelope.new("Q1", "bad@outside.test", ["user@local.test"])
    findings = [
        Finding(rule="subject.lines", action="drop", event="subject_blocked", reason="r",
                notify="content", data={"pattern": "*win*"}),
        Finding(rule="filename.patterns", action="remove_part", event="attachment_deleted",
                reason="r", part=3, notify="content", data={"file": "a.exe", "pattern": "*.exe"}),
        Finding(rule="container.max_depth", action="drop", event="container_limit", reason="r",
                notify="container", text="The extracted attachment depth exceeded set limits."),
        Finding(rule="encrypted.action", action="log", event="encrypted_container", reason="r",
                notify="encrypted", data={"file": "s.zip"}),
    ]
    outcome = WorkerOutcome(findings=findings, verdict=decide(findings), subject="You win")
    text = fill_metatags(DEFAULT_NOTIFY_ADMIN_BODY, metatags(envelope, outcome))
    assert "From: bad@outside.test" in text and "To: user@local.test" in text
    assert "Subject: You win\nMatching Subject: *win*" in text
    assert "File: a.exe\nMatching file name: *.exe" in text
    assert "The extracted attachment depth exceeded set limits." in text
    assert "Message contained an encrypted container" in text
    assert text.rstrip().endswith("The message was dropped")
    assert "${" not in text


async def test_an_event_field_cannot_forge_lines_of_an_alert_mail(tmp_path):
    """A user name with line breaks on the logon form went verbatim into the Frequent Failed
    Logon Attempts mail: a forged "logon ... success" line (console-security finding)."""
    home = make_home(tmp_path, admin__emails=["a@local.test"])
    sent: list = []
    engine = await _engine(home, sent)
    forged = "admin\r\n2026-11-29 08:00:00 UTC  logon  admin success"
    _console_event(home, Action.FAILED_LOGON, client_ip="192.0.2.7",
                   info=f"user {forged}: wrong password")
    assert len(await engine.poll_once()) == 1
    body = email.message_from_bytes(sent[0], policy=policy.default).get_content()
    event_lines = [line for line in body.splitlines() if " UTC  " in line]
    assert event_lines == [event_lines[0]] and "failed_logon" in event_lines[0]
    assert "admin\\x0d\\x0a2026-11-29 08:00:00 UTC  logon  admin success" in event_lines[0]


def test_a_subject_matching_several_lines_is_named_once_with_each_line():
    """Regression hunt: with a finding per matching line (50178bd) the notification said
    "Subject: ..." again before each of them."""
    envelope = Envelope.new("Q1", "bad@outside.test", ["user@local.test"])
    findings = [Finding(rule="subject.lines", action="drop", event="subject_blocked",
                        reason="r", notify="content", data={"pattern": pattern})
                for pattern in ("*free*", "*money*")]
    outcome = WorkerOutcome(findings=findings, verdict=decide(findings),
                            subject="FREE money now")
    assert metatags(envelope, outcome)["CONTENTINFO"].splitlines() == [
        "Subject: FREE money now", "Matching Subject: *free*", "Matching Subject: *money*"]


def test_metatags_keep_a_sender_subject_on_its_line():
    envelope = Envelope.new("Q1", "bad@outside.test", ["user@local.test"])
    outcome = WorkerOutcome(findings=[], verdict=decide([]),
                            subject="hi\r\nDisposition: The message was delivered")
    assert metatags(envelope, outcome)["MSGINFO"].splitlines() == [
        "From: bad@outside.test", "To: user@local.test",
        "Subject: hi\\x0d\\x0aDisposition: The message was delivered"]


def test_metatags_show_a_file_name_as_it_is_on_its_line():
    # policy finding C2: the admin read "photo\u202egpj.exe" as photoexe.jpg; a line break in
    # a file name (RFC 2231 allows %0A) started a forged line of its own
    envelope = Envelope.new("Q1", "bad@outside.test", ["user@local.test"])
    disguised = Finding(rule="filename.patterns", action="remove_part", reason="a name", part=1,
                        event="attachment_deleted", notify="content",
                        data={"file": "photo\u202egpj.exe\nDisposition: delivered",
                              "pattern": "*.exe"})
    outcome = WorkerOutcome(findings=[disguised], verdict=decide([disguised]), subject="hi")
    assert metatags(envelope, outcome)["CONTENTINFO"].splitlines() == [
        "File: photo⟨U+202E⟩gpj.exe\\x0aDisposition: delivered", "Matching file name: *.exe"]


def test_a_notification_subject_with_line_breaks_is_one_line():
    """A metatag in the subject template (${MSGINFO} has line breaks; a decoded Subject may
    too) made compose_mail raise, and the pipeline count the message as crashed."""
    raw = compose_mail(defaults(), "mm.test", ["a@local.test"],
                       "Violation: From: x\nSubject: a\r\nBcc: victim@example.com", "body",
                       "notification")
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == "Violation: From: x Subject: a\\x0d Bcc: victim@example.com"
    assert parsed["Bcc"] is None


def test_a_right_to_left_subject_keeps_its_marks_and_a_senders_override_is_shown():
    """review25b D2: the Subject an administrator types in Hebrew keeps the right-to-left
    mark it needs (the header-text rule allows it), where compose_mail showed it as
    ⟨U+200F⟩; what a sender wrote (${MSGINFO}'s Subject) still shows its override."""
    envelope = Envelope.new("Q1", "bad@outside.test", ["user@local.test"])
    outcome = WorkerOutcome(findings=[], verdict=decide([]), subject="invoice\u202efdp.scr")
    template = "\u05d4\u05d5\u05d3\u05e2\u05d4\u200f: ${MSGINFO}"
    subject = fill_metatags(template, metatags(envelope, outcome))
    raw = compose_mail(defaults(), "mm.test", ["a@local.test"], subject, "body",
                       "notification")
    shown = email.message_from_bytes(raw, policy=policy.default)["Subject"]
    assert shown.startswith("\u05d4\u05d5\u05d3\u05e2\u05d4\u200f: From: bad@outside.test")
    assert shown.endswith("Subject: invoice\u27e8U+202E\u27e9fdp.scr")
    assert "\u202e" not in shown
    # review26d R2: a tag's words of the administrator (a Subject pattern in Hebrew) keep
    # their mark, the sender's around them are shown; an override stored before the
    # header-text rule is shown too
    blocked = Finding(rule="subject.patterns", action="drop", reason="virus\u202eexe.txt",
                      event="subject_blocked", notify="content",
                      data={"pattern": "\u05de\u05d1\u05e6\u05e2\u200f*"})
    outcome = WorkerOutcome(findings=[blocked], verdict=decide([blocked]),
                            subject="a\u202eb")
    filled = fill_metatags("\u202eBlocked: ${CONTENTINFO}", metatags(envelope, outcome))
    shown = email.message_from_bytes(compose_mail(defaults(), "mm.test", ["a@local.test"],
                                                  filled, "body", "alert"),
                                     policy=policy.default)["Subject"]
    assert shown == ("\u27e8U+202E\u27e9Blocked: Subject: a\u27e8U+202E\u27e9b Matching "
                     "Subject: \u05de\u05d1\u05e6\u05e2\u200f*")
    virus = Finding(rule="antivirus", action="drop", reason="File: photo\u202egpj.exe",
                    event="virus_found", notify="virus")
    outcome = WorkerOutcome(findings=[virus], verdict=decide([virus]), subject="hi")
    assert metatags(envelope, outcome)["VIRUSINFO"].endswith(
        "File: photo\u27e8U+202E\u27e9gpj.exe")


def test_alerts_and_notifications_are_dated_in_utc_with_plus_0000():
    """They said -0000, 'offset unknown' in RFC 5322 §3.3 (interop tester), while bounces
    and the Received field say +0000."""
    raw = compose_mail(defaults(), "mm.test", ["a@local.test"], "Alert", "body", "alert")
    date = email.message_from_bytes(raw, policy=policy.default)["Date"]
    assert date.endswith(" +0000"), date


def test_the_service_stop_alert_is_mailed_when_the_core_stops(tmp_path, sink):
    """Not at the next start (which may never come): the listeners close first, the alert
    goes out through the still-running queue, then the rest stops (core/app.py)."""
    home = routed_home(tmp_path, sink, admin__emails=["admin@local.test"],
                       alerts__service_stop=True)
    core = CoreProcess(home).start()
    assert core.stop() == 0
    subjects = [email.message_from_bytes(m.data, policy=policy.default)["Subject"]
                for m in sink.messages]
    assert subjects == [ALERT_TEXTS["service_stop"][0]], (
        [(r["action"], r["info"]) for r in _all_events(home)],
        (home.root / "core-test.log").read_text()[-2000:])
    assert [row["rule"] for row in _events(home, Action.ALERT_SENT)] == ["alerts.service_stop"]
    assert list(Spool(home.spool).list("fast")) == []


def test_a_stop_alert_the_next_hop_defers_is_delivered_once_at_the_next_start(tmp_path, sink):
    home = routed_home(tmp_path, sink, admin__emails=["admin@local.test"],
                       alerts__service_stop=True)
    sink.tempfail_all = True
    core = CoreProcess(home).start()
    assert core.stop() == 0
    assert sink.messages == [] and len(_events(home, Action.DEFERRED)) == 1
    sink.tempfail_all = False
    with CoreProcess(home):
        sink.wait_for(1)
    subjects = [email.message_from_bytes(m.data, policy=policy.default)["Subject"]
                for m in sink.messages]
    assert subjects == [ALERT_TEXTS["service_stop"][0]] * 2     # the first run's, this run's
    assert len(_events(home, Action.ALERT_SENT)) == 2


@pytest.mark.parametrize("event, notified", [
    ("file_deleted", [["admin@local.test"], ["victim@forged.test"]]),
    # a mass-mailer worm forges its sender: no backscatter to it (alerts finding B6)
    ("mass_mailer_cleanup", [["admin@local.test"]]),
])
async def test_the_sender_of_a_mass_mailer_is_not_notified(event, notified):
    submitted: list = []

    async def submit(sender, recipients, message, kind):
        submitted.append(recipients)

    envelope = Envelope.new("Q1", "victim@forged.test", ["user@local.test"])
    virus = Finding(rule="av", action="drop", reason="File: x\nVirus: W32.Fake@mm\n",
                    event=event, notify="virus", data={"virus": "W32.Fake@mm", "file": "x"})
    outcome = WorkerOutcome(findings=[virus], verdict=decide([virus]), subject="hi")
    settings = {**defaults(), "notify.admin": True, "notify.sender": True,
                "admin.emails": ["admin@local.test"]}
    await Notifier(submit, lambda: "mx.local.test").violation(envelope, outcome, settings)
    assert submitted == notified


async def test_a_message_held_because_it_cannot_be_scanned_raises_the_suspect_alert(
        tmp_path, sink, nursery):
    """Guide Table 3-2: a message that triggers a "Cannot Scan" error is suspect and moved
    to hold. With the default alerts (scan_error off) such mail sat in hold/ and nobody was
    told (alerts finding B7)."""
    import smtplib
    from email.message import EmailMessage

    home = routed_home(tmp_path, sink, admin__emails=["admin@local.test"])
    assert stored_settings(home)["scan.unprocessable"] == "hold"
    core = await nursery.start(run_core, home)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@client.test", "user@local.test", "files"
    msg.set_content("see the archive")
    msg.add_attachment(b"PK\x03\x04 this is no zip at all", maintype="application",
                       subtype="zip", filename="broken.zip")

    def send():
        with smtplib.SMTP("127.0.0.1", core.smtp_addresses[0][1], timeout=30) as client:
            client.send_message(msg)
    await trio.to_thread.run_sync(send)
    [alert] = await trio.to_thread.run_sync(sink.wait_for, 1)
    parsed = email.message_from_bytes(alert.data, policy=policy.default)
    assert alert.recipients == ["admin@local.test"]
    assert parsed["Subject"] == ALERT_TEXTS["suspect_message"][0]
    assert "broken.zip" in parsed.get_content()
    await core.events.aflush()
    [held] = _events(home, Action.HELD)
    assert held["rule"] == "scan.unprocessable"
    core.cancel_scope.cancel()


async def test_a_queue_entry_set_aside_in_corrupt_raises_the_suspect_alert(tmp_path, sink,
                                                                          nursery):
    """An accepted message the core cannot process any more (chaos finding 6): with the
    default alerts (scan_error off) it sat in corrupt/ with one event nobody was told of."""
    home = routed_home(tmp_path, sink, admin__emails=["admin@local.test"])
    assert stored_settings(home)["alerts.suspect_message"] is True
    assert stored_settings(home)["alerts.scan_error"] is False
    spool = Spool(home.spool)
    incoming = spool.open_incoming("D24S0000000A")
    incoming.write(b"Subject: cut\r\n\r\n" + b"x" * 500 + b"\r\n")
    spool.commit([incoming.prepare(Envelope.new("D24S0000000A", "a@client.test",
                                                ["user@local.test"]))], "slow")
    with open(spool.message_path("slow", "D24S0000000A"), "r+b") as message:
        message.truncate(100)                       # storage trouble
    core = await nursery.start(run_core, home)      # recover() sets it aside
    [alert] = await trio.to_thread.run_sync(sink.wait_for, 1)
    parsed = email.message_from_bytes(alert.data, policy=policy.default)
    assert alert.recipients == ["admin@local.test"]
    assert parsed["Subject"] == ALERT_TEXTS["suspect_message"][0]
    assert "D24S0000000A" in parsed.get_content()
    assert "moved to corrupt/" in parsed.get_content()
    assert list(spool.list("corrupt")) == ["D24S0000000A"]
    core.cancel_scope.cancel()

