"""Alert bursts (core/notify.py rule 2; alerts findings B1, B2): one mail per alert kind per
THROTTLE_SECONDS however fast a client makes its events, the events in between held and
mailed together, at the end of the quiet time or at the core's stop; one outbreak alert per
outbreak.minutes, with its alert_sent.

The engine's quiet time runs on the clock it is given (tests.support.clock.FakeTime here);
the antivirus service's outbreak window on its wall clock (a FakeClock's now)."""

from __future__ import annotations

import email
import json
import smtplib
import socket
import time
from email import policy
from email.message import EmailMessage

import pytest
import trio

from core.app import run_core
from core.notify import MAX_EVENTS_LISTED, THROTTLE_SECONDS, AlertEngine
from core.pipeline.findings import Finding
from core.pipeline.run import WorkerOutcome
from core.pipeline.verdict import decide
from core.scan.service import AntivirusService
from shared.clock import FakeClock
from shared.events import Action, EventWriter
from shared.guide_texts import ALERT_TEXTS
from shared.spool import Envelope
from tests.support.clock import FakeTime
from tests.support.core import CoreProcess, make_home, routed_home, stored_settings
from tests.support.mail import EICAR
from tests.support.waiting import events_of, until


def _console_events(home, action, count, **fields):
    writer = EventWriter(home.db, "console")
    for n in range(count):
        writer.record(action, info=f"attempt {n}", **fields)
    writer.close()


def _body(message: bytes) -> str:
    return email.message_from_bytes(message, policy=policy.default).get_content()


def _listed(body: str) -> list[str]:
    return [line for line in body.splitlines() if " UTC  " in line]


async def _engine(home, sent: list, clock) -> tuple[AlertEngine, EventWriter]:
    """The alert engine of `home` on `clock`, its mails into `sent`, its alert_sent events
    written by a real writer."""
    async def submit(sender, recipients, data, kind):
        sent.append(data)
        return f"Q{len(sent)}"

    writer = EventWriter(home.db, "core")
    engine = AlertEngine(home.db, home.run, lambda: stored_settings(home), writer, submit,
                         lambda: "mm.test", clock=clock)
    await engine.load()
    return engine, writer


def _alerts_sent(home, writer):
    writer.flush()
    return [(row["rule"], json.loads(row["data"])["events"])
            for row in events_of(home, Action.ALERT_SENT)]


async def test_a_burst_is_mailed_at_once_then_held_and_mailed_as_one_when_the_time_is_up(
        tmp_path):
    """One client made 20 SMTP Protocol Violation mails in 20 s, one per poll."""
    home = make_home(tmp_path, admin__emails=["a@local.test"])
    sent: list = []
    clock = FakeTime()
    engine, writer = await _engine(home, sent, clock)
    _console_events(home, Action.UNAUTHORIZED_ACCESS, 1, client_ip="192.0.2.1")
    assert len(await engine.poll_once()) == 1                  # the first: at once

    _console_events(home, Action.UNAUTHORIZED_ACCESS, MAX_EVENTS_LISTED + 5,
                    client_ip="192.0.2.2")
    for _ in range(3):
        assert await engine.poll_once() == []                  # held, not dropped
        clock.now += (THROTTLE_SECONDS - 1) / 3
    assert await engine.poll_once() == []
    clock.now += 1
    assert len(await engine.poll_once()) == 1                  # the time is up: one mail
    body = _body(sent[1])
    assert ALERT_TEXTS["unauthorized_access"][1] in body
    assert len(_listed(body)) == MAX_EVENTS_LISTED and "attempt 0" in _listed(body)[0]
    assert body.rstrip().endswith("... and 5 more")
    assert _alerts_sent(home, writer) == [("alerts.unauthorized_access", 1),
                                          ("alerts.unauthorized_access", MAX_EVENTS_LISTED + 5)]

    # the mail started a new quiet time: the next event waits for its end
    _console_events(home, Action.UNAUTHORIZED_ACCESS, 1)
    assert await engine.poll_once() == []
    clock.now += THROTTLE_SECONDS
    assert len(await engine.poll_once()) == 1
    # a quiet time that ends with nothing held: the next event goes at once
    clock.now += THROTTLE_SECONDS
    assert await engine.poll_once() == []
    _console_events(home, Action.UNAUTHORIZED_ACCESS, 1)
    assert len(await engine.poll_once()) == 1
    assert len(sent) == 4
    writer.close()


async def test_each_alert_kind_has_its_own_quiet_time(tmp_path):
    home = make_home(tmp_path, admin__emails=["a@local.test"])
    sent: list = []
    engine, writer = await _engine(home, sent, FakeTime())
    _console_events(home, Action.FAILED_LOGON, 1)
    assert len(await engine.poll_once()) == 1
    _console_events(home, Action.FAILED_LOGON, 2)
    _console_events(home, Action.UNAUTHORIZED_ACCESS, 1)
    assert len(await engine.poll_once()) == 1                  # failed logons wait
    assert b"Unauthorized Attempt" in sent[1]
    # a stop mails what is held, whatever the time
    assert len(await engine.poll_once(flush=True)) == 1
    assert b"Frequent Failed Logon Attempts" in sent[2] and len(_listed(_body(sent[2]))) == 2
    assert _alerts_sent(home, writer) == [("alerts.failed_logons", 1),
                                          ("alerts.unauthorized_access", 1),
                                          ("alerts.failed_logons", 2)]
    writer.close()


async def test_a_held_entry_that_does_not_read_is_dropped_alone(tmp_path):
    """A bad held entry threw the whole saved state away: the cursor went to the newest
    event and every alert since it was skipped (core review 13)."""
    home = make_home(tmp_path, admin__emails=["a@local.test"])
    sent: list = []
    engine, writer = await _engine(home, sent, FakeTime())
    _console_events(home, Action.SERVICE_START_IMPROPER, 1)
    assert len(await engine.poll_once()) == 1      # mailed, and the cursor saved
    cursor = json.loads((home.run / "alerts.cursor").read_text())["cursor"]
    _console_events(home, Action.UNAUTHORIZED_ACCESS, 1)   # after the cursor
    (home.run / "alerts.cursor").write_text(json.dumps(
        {"cursor": cursor, "held": {"failed_logons": {"lines": [], "count": 2, "bogus": 1}}}))
    writer.close()
    engine, writer = await _engine(home, sent, FakeTime())
    assert len(await engine.poll_once()) == 1      # the event after the cursor is mailed
    assert b"Unauthorized Attempt" in sent[-1]
    writer.close()

# --- the real core: SMTP protocol violations, a stop, an improper end -----------------------

def _violate(port: int, count: int) -> None:
    """`count` SMTP sessions that each send one unknown command."""
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            sock.sendall(b"XYZZY\r\n")
            reader.readline()
            sock.sendall(b"QUIT\r\n")
            reader.readline()


def _held(home) -> int:
    """How many events the engine holds, as its saved state says (0 before it has any)."""
    try:
        state = json.loads((home.run / "alerts.cursor").read_text())
    except (FileNotFoundError, ValueError):
        return 0
    if not isinstance(state, dict):
        return 0
    return sum(held["count"] for held in state["held"].values())


def _subjects(sink) -> list[str]:
    return [email.message_from_bytes(m.data, policy=policy.default)["Subject"]
            for m in sink.messages]


def _burst_home(tmp_path, sink):
    return routed_home(tmp_path, sink, admin__emails=["admin@local.test"],
                       alerts__smtp_protocol_violation=True, alerts__service_stop=True)


def _held_after_first_mail(home, sink, core) -> None:
    """One violation and its mail, then three more that the engine holds."""
    _violate(core.smtp_port, 1)
    sink.wait_for(1, timeout=30)
    _violate(core.smtp_port, 3)
    for _ in range(600):
        if _held(home) >= 3:
            break
        time.sleep(0.05)
    assert _held(home) == 3, _subjects(sink)


def test_the_core_stop_mails_the_held_events_with_the_service_stop_alert(tmp_path, sink):
    home = _burst_home(tmp_path, sink)
    core = CoreProcess(home).start()
    try:
        _held_after_first_mail(home, sink, core)
        assert _subjects(sink) == [ALERT_TEXTS["smtp_protocol_violation"][0]]
    finally:
        assert core.stop() == 0
    assert sorted(_subjects(sink)) == sorted([ALERT_TEXTS["smtp_protocol_violation"][0]] * 2
                                             + [ALERT_TEXTS["service_stop"][0]])
    held_mail = [m for m in sink.messages[1:] if b"SMTP Protocol Violation" in m.data]
    assert len(_listed(_body(held_mail[0].data))) == 3
    sent = [(r["rule"], json.loads(r["data"])["events"])
            for r in events_of(home, Action.ALERT_SENT)]
    violations = len(events_of(home, Action.PROTOCOL_VIOLATION))
    assert sorted(sent) == sorted([("alerts.service_stop", 1),
                                   ("alerts.smtp_protocol_violation", 1),
                                   ("alerts.smtp_protocol_violation", 3)])
    assert violations == 4
    assert _held(home) == 0


@pytest.mark.slow          # several seconds: `make test-slow` (CI runs it)
def test_held_events_survive_an_improper_end_and_go_at_the_next_start(tmp_path, sink):
    home = _burst_home(tmp_path, sink)
    core = CoreProcess(home).start()
    try:
        _held_after_first_mail(home, sink, core)
    finally:
        core.kill()
    with CoreProcess(home):
        sink.wait_for(3, timeout=30)        # the held violations, the improper start
    assert sorted(_subjects(sink)) == sorted([ALERT_TEXTS["smtp_protocol_violation"][0]] * 2
                                             + [ALERT_TEXTS["service_start_improper"][0]]
                                             + [ALERT_TEXTS["service_stop"][0]])
    held_mail = [m for m in sink.messages[1:] if b"SMTP Protocol Violation" in m.data]
    assert len(_listed(_body(held_mail[0].data))) == 3


# --- outbreaks (core/scan/service.py rule 6) ------------------------------------------------

def _send_infected(port: int, count: int) -> None:
    for n in range(count):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "s@client.test", "user@local.test", f"m{n}"
        msg.set_content("body")
        msg.add_attachment(EICAR, maintype="application", subtype="octet-stream",
                           filename="eicar.com")
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.send_message(msg)


async def test_an_outbreak_is_one_alert_with_its_alert_sent(tmp_path, sink, nursery):
    """12 infected messages with outbreak.count 3 gave 4 alerts in the same second, and no
    alert_sent."""
    home = routed_home(tmp_path, sink, outbreak__enabled=True, outbreak__count=3,
                       outbreak__minutes=60, outbreak__emails=["secops@local.test"])
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send_infected, core.smtp_addresses[0][1], 12)

    def done():          # the alerts were mailed before their messages were delivered
        return (len(sink.messages_to("user@local.test")) == 12
                and not list(home.queue("fast").iterdir()))
    await until(done, timeout=60)
    await core.events.aflush()
    alerts = [m for m in sink.messages if m.recipients == ["secops@local.test"]]
    assert len(alerts) == 1
    assert len(events_of(home, Action.OUTBREAK)) == 1
    [sent] = events_of(home, Action.ALERT_SENT)
    assert (sent["rule"], json.loads(sent["data"])["alert"]) == ("outbreak.enabled", "outbreak")
    assert sent["recipients"] == "secops@local.test"
    core.cancel_scope.cancel()


class _Events:
    def __init__(self):
        self.recorded = []

    def record(self, action, **fields):
        self.recorded.append((Action(action), fields))


async def test_the_next_outbreak_alert_comes_only_after_the_window(tmp_path):
    home = make_home(tmp_path)
    settings = {**stored_settings(home), "outbreak.enabled": True, "outbreak.count": 3,
                "outbreak.minutes": 60, "outbreak.emails": ["secops@local.test"],
                "av.quarantine": "nothing"}
    mails: list = []

    async def submit(sender, recipients, data, kind):
        mails.append(data)
        return f"Q{len(mails)}"

    clock, events = FakeClock(), _Events()
    service = AntivirusService(home, events, None, lambda: settings, None, submit=submit,
                               clock=clock.now)
    virus = Finding(rule="av.action", action="remove_part", event="file_deleted",
                    reason="EICAR found", part=1, data={"virus": "EICAR-Test-File"})
    outcome = WorkerOutcome(findings=[virus], verdict=decide([virus]), subject="x")

    async def infected(count):
        for _ in range(count):
            envelope = Envelope.new("Q", "s@client.test", ["user@local.test"])
            await service.after_scan(envelope, outcome, tmp_path / "none", settings)

    await infected(3)
    assert len(mails) == 1
    clock.advance(10 * 60)
    await infected(20)                       # the same outbreak: no new alert
    assert len(mails) == 1
    clock.advance(50 * 60)                   # the window since the alert has passed
    await infected(1)
    assert len(mails) == 2
    assert "21 infected messages in 60 minutes" in _body(mails[1])
    await infected(5)
    assert len(mails) == 2
    outbreaks = [f for a, f in events.recorded if a is Action.OUTBREAK]
    sent = [f for a, f in events.recorded if a is Action.ALERT_SENT]
    assert [f["data"]["count"] for f in outbreaks] == [3, 21]
    assert [f["queue_id"] for f in sent] == ["Q1", "Q2"]
    # the window shortened meanwhile (guide tester): its pause is the new one, not the
    # hour the last alert began under
    settings["outbreak.minutes"] = 1
    clock.advance(2 * 60)
    await infected(3)
    assert len(mails) == 3
