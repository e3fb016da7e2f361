"""The filtering pipeline end to end: smtplib -> the core on loopback (in-process, real
worker processes) -> loopback sinks. Nothing leaves the machine."""

from __future__ import annotations

import base64
import email
import io
import json
import smtplib
import zipfile
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import trio

from core.app import run_core
from core.pipeline.decompose import decompose_bytes
from shared.events import Action
from tests.support.core import make_home, routed_home
from tests.unit.pipeline.support import corpus_file, settings
from tests.support.waiting import events_of as _events, until

pytestmark = pytest.mark.trio

FAULTS = str(Path(__file__).with_name("pipeline_faults.py"))
EXE = b"MZ\x90\x00" + b"\x00" * 200


def _mail(subject="Hello", body="Body text.\n", attachments=(), headers=None):
    msg = EmailMessage()
    msg["From"] = "sender@client.test"
    msg["To"] = "user@local.test"
    msg["Subject"] = subject
    msg["Message-ID"] = "<e2e@client.test>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream",
                           filename=name)
    return msg


def _send(port, msg, recipients=("user@local.test",)):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.send_message(msg, from_addr="sender@client.test",
                                   to_addrs=list(recipients))




async def _until(predicate, timeout=20.0):
    await until(predicate, timeout)


async def _held(core, home) -> None:
    """Until the held event is written: it is recorded once the move into hold/ has come
    back from its thread, so the file can be seen there first (CI saw no event once)."""
    with trio.fail_after(30):
        while not (await core.events.aflush() or _events(home, Action.HELD)):
            await trio.sleep(0.05)


async def _settle(core, home):
    await _until(lambda: not list(home.queue("fast").iterdir()))
    await core.events.aflush()


def _parts(raw):
    """Raw bytes of the MIME parts by (type, name); the first of equal keys wins."""
    view = decompose_bytes(raw, {}, settings())
    out = {}
    for p in view.parts:
        if p.span and p.id:
            out.setdefault((p.content_type, p.filename), raw[p.span[0]:p.span[1]])
    return out


async def test_invoice_pdf_exe_is_removed_with_text_and_the_rest_intact(tmp_path, sink,
                                                                          nursery):
    home = routed_home(tmp_path, sink, filename__enabled=True)
    core = await nursery.start(run_core, home)
    msg = _mail(attachments=[("invoice.pdf.exe", EXE), ("notes.txt.bin", b"keep me")])
    sent = msg.as_bytes().replace(b"\n", b"\r\n")
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], msg)
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    names = [p.get_filename() for p in parsed.iter_attachments() if p.get_filename()]
    assert names == ["notes.txt.bin"]
    texts = [p.get_content().strip() for p in parsed.walk()
             if p.get_content_type() == "text/plain"]
    # the file is also a disguised executable to the heuristics, whose text follows
    assert any(t.startswith(settings()["filename.deleted_text"]) for t in texts)
    before, after = _parts(sent), _parts(received.data)
    assert after[("text/plain", None)] == before[("text/plain", None)]
    assert after[("application/octet-stream", "notes.txt.bin")] == \
        before[("application/octet-stream", "notes.txt.bin")]
    await _settle(core, home)
    [event] = _events(home, Action.ATTACHMENT_DELETED)
    assert event["rule"] == "filename.patterns" and "invoice.pdf.exe" in event["data"]
    assert core.counters.values["attachments_stripped"] == 1
    core.cancel_scope.cancel()


def _zip(*names, encrypted=False):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in names:
            z.writestr(name, EXE)
    data = bytearray(out.getvalue())
    if encrypted:         # the ZipCrypto flag on every local and central header
        for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            at = data.find(sig)
            while at >= 0:
                data[at + offset] |= 1
                at = data.find(sig, at + 1)
    return bytes(data)


@pytest.mark.parametrize("encrypted, stripped", [(False, 1), (True, 0)])
async def test_the_status_counts_each_stripped_attachment_once(tmp_path, sink, nursery,
                                                               encrypted, stripped):
    # events finding C8: two blocked members of one zip counted two "top-level attachments
    # stripped" (the guide's figure), and a member of an encrypted zip one beside the
    # encryption deleted
    home = routed_home(tmp_path, sink, filename__enabled=True)
    core = await nursery.start(run_core, home)
    msg = _mail(attachments=[("tools.zip", _zip("a.exe", "b.exe", encrypted=encrypted))])
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], msg)
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert not [p for p in email.message_from_bytes(received.data).walk() if p.get_filename()]
    await _settle(core, home)
    assert len(_events(home, Action.ATTACHMENT_DELETED)) == 2       # one per blocked file
    assert core.counters.values.get("attachments_stripped", 0) == stripped
    assert core.counters.values.get("encryptions_deleted", 0) == int(encrypted)
    core.cancel_scope.cancel()


SCRIPT = b'WScript.Echo "hello"\r\n'
# One attachment's name fields, each declaring run.vbs beside a harmless name; readers
# differ in which parameter they take (decompose/content_fields.py rule 2)
DECLARED_NAMES = {
    "repeated-filename": b"Content-Type: application/octet-stream\r\n"
                         b'Content-Disposition: attachment; filename="readme.txt"; '
                         b'filename="run.vbs"',
    "plain-and-rfc2231": b"Content-Type: application/octet-stream\r\n"
                         b'Content-Disposition: attachment; filename="readme.txt"; '
                         b"filename*=utf-8''run%2Evbs",
    # the email package fails on filename*= beside filename*0=, and the part lost its type
    # and every name: it was read as body text
    "rfc2231-mixed-forms": b"Content-Type: application/octet-stream\r\n"
                           b"Content-Disposition: attachment; filename*=utf-8''readme.txt; "
                           b'filename*0="run"; filename*1=".vbs"',
    "repeated-name": b'Content-Type: application/octet-stream; name="readme.txt"; '
                     b'name="run.vbs"',
    "name-in-disposition": b"Content-Type: application/octet-stream\r\n"
                           b'Content-Disposition: attachment; name="run.vbs"',
}


def _with_declared_names(case: str) -> bytes:
    return (b"From: sender@client.test\r\nTo: user@local.test\r\nSubject: " + case.encode()
            + b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
            b"--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1\r\n"
            + DECLARED_NAMES[case] + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(SCRIPT) + b"\r\n--b1--\r\n")


async def test_every_name_a_part_declares_meets_the_file_name_rules(tmp_path, sink, nursery):
    # guide36 finding 7: filename="readme.txt"; filename="run.vbs" passed *.vbs, the name
    # read being the first parameter, and a reader taking the last saved run.vbs
    home = routed_home(tmp_path, sink, filename__enabled=True, filename__patterns=["*.vbs"])
    core = await nursery.start(run_core, home)

    def send_all():
        with smtplib.SMTP("127.0.0.1", core.smtp_addresses[0][1], timeout=30) as client:
            for case in DECLARED_NAMES:
                client.sendmail("sender@client.test", ["user@local.test"],
                                _with_declared_names(case))

    await trio.to_thread.run_sync(send_all)
    received = await trio.to_thread.run_sync(sink.wait_for, len(DECLARED_NAMES))
    await _settle(core, home)
    kept = {}
    for message in received:
        parsed = email.message_from_bytes(message.data, policy=policy.default)
        kept[parsed["Subject"]] = base64.b64encode(SCRIPT) in message.data
    assert kept == dict.fromkeys(DECLARED_NAMES, False)
    rows = _events(home, Action.ATTACHMENT_DELETED)
    assert sorted(json.loads(row["data"])["matched_name"] for row in rows) == \
        ["run.vbs"] * len(DECLARED_NAMES)
    core.cancel_scope.cancel()


async def test_blocked_subject_is_dropped_and_admin_notified(tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, subject__enabled=True, subject__lines=["*lottery*"],
                 notify__admin=True, admin__emails=["admin@local.test"])
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1],
                                  _mail("RE: You won the LOTTERY"))
    [notice] = await trio.to_thread.run_sync(sink.wait_for, 1)
    assert notice.recipients == ["admin@local.test"] and notice.sender == ""
    parsed = email.message_from_bytes(notice.data, policy=policy.default)
    assert parsed["Subject"] == "Mailmoat Policy Violation"
    body = parsed.get_content()
    assert "From: sender@client.test" in body and "To: user@local.test" in body
    assert "Matching Subject: *lottery*" in body
    assert "The message was dropped" in body
    assert "${" not in body
    await _settle(core, home)
    await trio.sleep(0.5)
    assert len(sink.messages) == 1                       # the original was not delivered
    [dropped] = _events(home, Action.DROPPED)
    assert dropped["rule"] == "subject.lines"
    [blocked] = _events(home, Action.SUBJECT_BLOCKED)
    assert '"pattern": "*lottery*"' in blocked["data"]
    core.cancel_scope.cancel()



async def test_a_finding_whose_action_did_not_happen_reads_superseded(tmp_path, sink,
                                                                       nursery):
    """A subject forward beside a content-rule drop read "forwarded", and the file-name
    deletion of a dropped message "deleted" (policy finding C1)."""
    home = routed_home(tmp_path, sink, subject__enabled=True, subject__lines=["*lottery*"],
                       subject__action="forward", subject__forward_to="sec@local.test",
                       rules__content=[{"terms": ["winnings"]}], filename__enabled=True)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], _mail(
        "Your lottery prize", body="Claim your winnings.\n",
        attachments=[("claim.exe", b"MZ not really")]))
    await _settle(core, home)
    results = {action: [(row["result"], json.loads(row["data"])["action"])
                        for row in _events(home, action)]
               for action in (Action.SUBJECT_BLOCKED, Action.CONTENT_RULE_VIOLATION,
                              Action.ATTACHMENT_DELETED)}
    assert results == {Action.SUBJECT_BLOCKED: [("superseded", "forward")],
                       Action.CONTENT_RULE_VIOLATION: [("dropped", "drop")],
                       Action.ATTACHMENT_DELETED: [("superseded", "remove_part")]}
    assert [row["rule"] for row in _events(home, Action.DROPPED)] == ["rules.content[0]"]
    assert sink.messages == []
    core.cancel_scope.cancel()

async def test_relay_from_unlisted_client_to_non_local_domain_gets_550(tmp_path, sink,
                                                                        nursery):
    home = routed_home(tmp_path, sink, relay__allowed=["10.9.8.7", "*.trusted.test"])
    core = await nursery.start(run_core, home)

    def attempt():
        with smtplib.SMTP("127.0.0.1", core.smtp_addresses[0][1], timeout=10) as client:
            client.ehlo("client.test")
            client.mail("a@client.test")
            local = client.rcpt("user@local.test")
            outside = client.rcpt("someone@elsewhere.example")
            return local, outside

    local, (code, text) = await trio.to_thread.run_sync(attempt)
    assert local[0] == 250
    assert code == 550 and text.startswith(b"5.7.1")
    core.cancel_scope.cancel()


def _encrypted_zip():
    try:
        return corpus_file("archives/encrypted/zipcrypto_infected.zip")
    except pytest.skip.Exception:
        data = bytearray(io.BytesIO().getvalue())
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("secret.txt", b"hidden")
        data = bytearray(out.getvalue())
        for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            data[data.find(sig) + off] |= 1
        return bytes(data)


@pytest.mark.parametrize("action", ["delete", "drop", "log", "forward"])
async def test_encrypted_zip_follows_encrypted_action(tmp_path, sink, nursery, action):
    extra = {"encrypted__forward_to": "security@local.test",
             "encrypted__forward_subject": "Encrypted attachment held"} \
        if action == "forward" else {}
    home = routed_home(tmp_path, sink, encrypted__action=action, **extra)
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1],
                                  _mail("Files", attachments=[("secret.zip", _encrypted_zip())]))
    await _settle(core, home)
    [event] = _events(home, Action.ENCRYPTED_CONTAINER)
    assert event["rule"] == "encrypted.action"
    if action == "drop":
        await trio.sleep(0.5)
        assert sink.messages == []
        assert _events(home, Action.DROPPED)[0]["rule"] == "encrypted.action"
        assert event["result"] == "dropped"
    else:
        [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
        parsed = email.message_from_bytes(received.data, policy=policy.default)
        names = [p.get_filename() for p in parsed.iter_attachments() if p.get_filename()]
        if action == "delete":
            assert names == [] and received.recipients == ["user@local.test"]
            assert event["result"] == "deleted"
            assert core.counters.values["encryptions_deleted"] == 1
        elif action == "log":
            assert names == ["secret.zip"] and received.recipients == ["user@local.test"]
        else:
            assert names == ["secret.zip"] and received.recipients == ["security@local.test"]
            assert parsed["Subject"] == "Encrypted attachment held"
            assert _events(home, Action.FORWARDED)[0]["rule"] == "encrypted.action"
    core.cancel_scope.cancel()


async def test_disclaimer_for_non_local_destination(tmp_path, sink, nursery):
    home = make_home(tmp_path, routing__default={"host": "127.0.0.1", "port": sink.port},
                     relay__mode="allow", disclaimer__enabled=True,
                     disclaimer__text="This message is confidential.")
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(lambda: _send(core.smtp_addresses[0][1], _mail(),
                                                recipients=("x@elsewhere.test",)))
    [received] = await trio.to_thread.run_sync(sink.wait_for, 1)
    body = email.message_from_bytes(received.data, policy=policy.default).get_body(("plain",))
    assert body.get_content().rstrip().endswith("This message is confidential.")
    core.cancel_scope.cancel()


# --- worker crashes and hangs (SPEC §4; ARCHITECTURE invariant 2) ---------------------------------

@pytest.mark.slow       # three worker processes crashed and started again (~3.5 s)
async def test_worker_crash_three_times_holds_with_suspect_alert(tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, admin__emails=["admin@local.test"])
    core = await nursery.start(lambda task_status: run_core(
        home, pipeline_options={"fault": FAULTS + ":crash_if_marked"},
        task_status=task_status))
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(_send, port, _mail("boom", headers={"X-Test-Fault": "yes"}))
    await trio.to_thread.run_sync(_send, port, _mail("fine"))
    await _until(lambda: len(list(home.queue("hold").iterdir())) == 1, timeout=60)
    await _held(core, home)
    errors = _events(home, Action.SCAN_ERROR)
    assert len(errors) == 3, [(e["queue_id"], e["rule"], e["info"]) for e in errors]
    [held] = _events(home, Action.HELD)
    assert held["rule"] == "suspect_message"
    got = await trio.to_thread.run_sync(lambda: sink.wait_for(2, timeout=30))
    subjects = sorted(email.message_from_bytes(m.data)["Subject"] for m in got)
    assert subjects == ["Suspect Message", "fine"]
    alert = next(m for m in got if m.recipients == ["admin@local.test"])
    assert b"A suspect message was received by the server." in alert.data
    await core.events.aflush()
    assert _events(home, Action.ALERT_SENT)[0]["rule"] == "alerts.suspect_message"
    core.cancel_scope.cancel()


# The processing limit of the hung-worker test: well above what a worker started again on a
# loaded machine takes to import (about 1.1 s), which counts in it.
HANG_LIMIT = 5.0


@pytest.mark.slow          # several seconds: `make test-slow` (CI runs it)
async def test_hung_worker_is_stopped_and_smtp_stays_responsive(tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink)
    core = await nursery.start(lambda task_status: run_core(
        home, pipeline_options={"fault": FAULTS + ":hang_if_marked",
                                "timeout_seconds": HANG_LIMIT},
        task_status=task_status))
    port = core.smtp_addresses[0][1]
    await trio.to_thread.run_sync(_send, port, _mail("hang", headers={"X-Test-Fault": "yes"}))
    for i in range(3):                        # sessions are served while the worker hangs
        await trio.to_thread.run_sync(_send, port, _mail(f"during {i}"))
    # backstops, not measures: under load each worker started again takes seconds
    await trio.to_thread.run_sync(lambda: sink.wait_for(3, timeout=120))
    await _until(lambda: len(list(home.queue("hold").iterdir())) == 1, timeout=120)
    await _held(core, home)
    [held] = _events(home, Action.HELD)
    assert held["rule"] == "suspect_message" and held["subject"] == "hang"
    # The hung message's three crashes. On a loaded machine an ordinary message can take
    # longer than the limit too, the time a worker started again after the hung one was
    # stopped takes to import counting in it, and be tried again (CI once, at a 2 s limit):
    # a timeout, never another crash, and delivered above all the same.
    stopped = f"stopped after {HANG_LIMIT:g} s"
    errors = _events(home, Action.SCAN_ERROR)
    assert all(stopped in e["info"] for e in errors), [e["info"] for e in errors]
    errors = [e for e in errors if e["queue_id"] == held["queue_id"]]
    assert len(errors) == 3, [e["info"] for e in errors]
    # Causal, not wall-clock: the three sessions were accepted before the hung worker was
    # stopped the first time, so they were served while it hung.
    accepted = _events(home, Action.ACCEPTED)
    assert len(accepted) == 4 and max(e["id"] for e in accepted[1:]) < errors[0]["id"]
    core.cancel_scope.cancel()


@pytest.mark.slow          # several seconds: `make test-slow` (CI runs it)
async def test_waiting_for_a_busy_worker_is_not_a_crash(tmp_path, sink, nursery, monkeypatch):
    # regression: the queue manager's 60-second deadline ran from when it asked for a worker,
    # so while slow messages held every worker the ones waiting behind them — small ordinary
    # mail among them — were charged crashes and held as suspect. Here the limit is 10 s
    # (the queue manager's own constant set to it too, as it was the same 60 s fact); each
    # slow message takes 4 s, and 6 of them queue behind one another on 2 workers.
    import core.spool.manager
    monkeypatch.setattr(core.spool.manager, "PROCESS_TIMEOUT_SECONDS", 10.0)
    home = routed_home(tmp_path, sink)
    core_handle = await nursery.start(lambda task_status: run_core(
        home, pipeline_options={"fault": FAULTS + ":slow_if_marked", "timeout_seconds": 10.0},
        task_status=task_status))
    port = core_handle.smtp_addresses[0][1]

    def send_all():
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            for i in range(6):
                client.send_message(_mail(f"slow {i}", headers={"X-Test-Fault": "yes"}),
                                    to_addrs=["user@local.test"])
            for i in range(2):
                client.send_message(_mail(f"plain {i}"), to_addrs=["user@local.test"])

    await trio.to_thread.run_sync(send_all)
    await trio.to_thread.run_sync(lambda: sink.wait_for(8, timeout=120))
    await core_handle.events.aflush()
    assert _events(home, Action.SCAN_ERROR) == []
    assert not list(home.queue("hold").iterdir())
    core_handle.cancel_scope.cancel()
