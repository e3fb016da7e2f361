"""`mailmoat report summary|detail` as a real subprocess (SPEC §2): formats, filters, times
in the `timezone` setting, exit statuses. Events are seeded through the event writer."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys

import pytest

from shared.clock import FakeClock
from shared.events import Action, EventWriter
from tests.support.core import make_home

_SCRIPT = shutil.which("mailmoat", path=os.path.dirname(sys.executable))
MAILMOAT = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "shared.cli"]
T0 = 1_800_000_000.0   # 2027-01-15T08:00:00Z


def report(home, *args, expect=0):
    environ = {k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"}
    result = subprocess.run([*MAILMOAT, "report", *map(str, args), "--home", str(home.root)],
                            capture_output=True, env=environ, timeout=60)
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr, stderr
    assert result.returncode == expect, (result.returncode, result.stdout, stderr)
    return result.stdout.decode("utf-8"), stderr


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = make_home(tmp_path_factory.mktemp("report") / "home", timezone="Europe/Berlin",
                     premium__enabled=True)
    clock = FakeClock(T0)
    writer = EventWriter(home.db, "core", clock)
    for i in range(5):
        clock.value = T0 + i * 600                     # 09:00 … 09:40 Berlin
        writer.record(Action.ACCEPTED, queue_id=f"Q{i}", size=1024, sender="a@example.com",
                      recipients=["b@example.net", "c@example.net"], subject=f"Hello {i}")
        writer.record(Action.DELIVERED, queue_id=f"Q{i}", recipients=["b@example.net"])
    clock.value = T0 + 3000
    writer.record(Action.SPAM, queue_id="Q1", info="score 100")
    writer.record(Action.FILE_REPAIRED, queue_id="Q2", data={"virus": "W97M.Melissa"},
                  subject="-@+= formula")
    writer.record(Action.DELIVERED, queue_id="B1", recipients=["a@example.com"],
                  data={"generated": True})
    clock.value = T0 + 4000                            # 10:06:40 Berlin: two saved changes
    # What console.settings_service.record_change writes (secrets already "***").
    writer.record(Action.OBJECT_MODIFIED, result="saved", client_ip="192.0.2.9",
                  info="Configuration › Setup", rule="admin.password,smtp.banner",
                  data={"user": "admin", "page": "setup", "changes": {
                      "admin.password": ["***", "***"],
                      "smtp.banner": ["ESMTP", '"><script>x</script> für']}})
    writer.record(Action.OBJECT_MODIFIED, result="saved", client_ip="192.0.2.9",
                  info="Anti-spam Policy › Auto-generated Whitelist",
                  data={"user": "report", "page": "auto_whitelist", "changes": {},
                        "command": "whitelist.auto.delete",
                        "args": {"domains": ["alpha.net", "zeta.org"]}, "command_id": 4})
    clock.value = T0 - 86_400                          # the day before
    writer.record(Action.ACCEPTED, queue_id="OLD", size=1)
    writer.close()
    return home


def test_summary_text_is_an_aligned_report(home):
    out, _ = report(home, "summary", "--from", "2027-01-15", "--to", "2027-01-15")
    assert "Summary Report  2027-01-15 00:00 – 2027-01-16 00:00 Europe/Berlin" in out
    lines = out.splitlines()
    accepted = next(line for line in lines if line.startswith("Messages Accepted"))
    delivered = next(line for line in lines if line.startswith("Messages Delivered"))
    assert accepted.split()[-1] == "5" and delivered.split()[-1] == "6"
    assert len(accepted) == len(delivered)            # counts right-aligned in one column
    assert "Premium AntiSpam Summary" in out and "W97M.Melissa" in out


def test_summary_csv_and_json(home):
    out, _ = report(home, "summary", "--from", "2027-01-15", "--to", "2027-01-15",
                    "--format", "csv")
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["section", "item", "count"]
    assert ["message", "Messages Accepted", "5"] in rows
    assert ["message", "Data Accepted (KB)", "5"] in rows
    assert ["premium", "Spam Detected", "1"] in rows and ["premium", "Total", "1"] in rows
    assert ["viruses", "W97M.Melissa", "1"] in rows
    out, _ = report(home, "summary", "--from", "2027-01-15", "--to", "2027-01-15",
                    "--format", "json")
    objects = [json.loads(line) for line in out.splitlines()]
    assert objects[0] == {"section": "message", "item": "Messages Accepted", "count": 5}


def test_detail_csv_filters_and_escapes(home):
    out, _ = report(home, "detail", "--from", "2027-01-15T09:00", "--to", "2027-01-15T10:00",
                    "--action", "accepted", "--action", "file_repaired", "--format", "csv")
    assert out.startswith("time,category,action,result,queue_id,connection_id,client_ip,"
                          "sender,recipients,subject,size,rule,info\r\n")
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [r["action"] for r in rows] == ["accepted"] * 5 + ["file_repaired"]
    assert rows[0]["time"] == "2027-01-15T09:00:00+01:00"
    assert rows[0]["recipients"] == "b@example.net;c@example.net"
    assert rows[-1]["subject"] == "'-@+= formula" and rows[-1]["info"] == "virus=W97M.Melissa"


def test_detail_search_json_and_offsets(home):
    out, _ = report(home, "detail", "--from", "2027-01-15T08:00Z", "--to",
                    "2027-01-15T08:25+00:00", "--search", "HELLO", "--format", "json")
    objects = [json.loads(line) for line in out.splitlines()]
    assert [o["subject"] for o in objects] == ["Hello 0", "Hello 1", "Hello 2"]
    assert list(objects[0]) == ["time", "category", "action", "result", "queue_id",
                                "connection_id", "client_ip", "sender", "recipients", "subject",
                                "size", "rule", "info"]


def test_detail_text_is_the_default_format(home):
    out, _ = report(home, "detail", "--from", "2027-01-14", "--to", "2027-01-15",
                    "--action", "accepted")
    lines = out.splitlines()
    assert lines[0].split() == ["time", "category", "action", "result", "queue_id",
                                "connection_id", "client_ip", "sender", "recipients", "subject",
                                "size", "rule", "info"]
    assert len(lines) == 2 + 6 and "OLD" in out


def test_object_modified_says_who_changed_what_in_every_format(home):
    """Guide Table 7-5 "Object modified": what was modified and which user modified it."""
    window = ["--from", "2027-01-15T10:00", "--to", "2027-01-15T11:00",
              "--action", "object_modified"]
    changed = ('admin.password: "***" → "***"; '
               'smtp.banner: "ESMTP" → "\\"><script>x</script> für"')
    deleted = ('command=whitelist.auto.delete; args.domains=["alpha.net", "zeta.org"]; '
               'command_id=4')
    out, _ = report(home, "detail", *window, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [(r["client_ip"], r["info"]) for r in rows] == [
        ("192.0.2.9", f"Configuration › Setup; user=admin; {changed}"),
        ("192.0.2.9", f"Anti-spam Policy › Auto-generated Whitelist; user=report; {deleted}")]
    out, _ = report(home, "detail", *window, "--format", "json")
    objects = [json.loads(line) for line in out.splitlines()]
    assert [o["info"] for o in objects] == [r["info"] for r in rows]
    out, _ = report(home, "detail", *window)
    lines = out.splitlines()
    assert lines[0].split()[-1] == "info" and len(lines) == 4
    assert lines[2].endswith(f"user=admin; {changed}")
    assert lines[3].endswith(f"user=report; {deleted}")
    out, _ = report(home, "detail", *window, "--search", "<SCRIPT>X", "--format", "json")
    assert [json.loads(line)["rule"] for line in out.splitlines()] == [
        "admin.password,smtp.banner"]


@pytest.mark.parametrize("args, message", [
    (["detail", "--from", "yesterday"], "--from: "),
    (["detail", "--to", "2027-02-30"], "--to: "),
    (["detail", "--from", "2027-01-16", "--to", "2027-01-15"], "must be before its end"),
    (["detail", "--action", "nonsense"], "--action: unknown action 'nonsense'"),
    (["summary", "--search", "x"], "detail report only"),
])
def test_bad_input_exits_2_with_one_line(home, args, message):
    _, err = report(home, *args, expect=2)
    assert message in err and len(err.strip().splitlines()) == 1


def test_default_range_is_the_last_24_hours(home):
    out, _ = report(home, "detail", "--format", "csv")
    assert out.splitlines() == ["time,category,action,result,queue_id,connection_id,client_ip,"
                                "sender,recipients,subject,size,rule,info"]


def test_a_multi_line_info_is_one_readable_line_of_the_text_report(tmp_path):
    # events finding C10: a virus finding's info ("File: …\nVirus: …\n…") was printed
    # with its line breaks as `\x0a`; it reads as "File: …; Virus: …", one event a line
    home = make_home(tmp_path / "home")
    writer = EventWriter(home.db, "core", FakeClock(T0))
    writer.record(Action.FILE_DELETED, queue_id="Q9", rule="av.on_virus",
                  info="File: eicar.com\nVirus: Mailmoat.Test.EICAR\nFound: signature\n"
                       "Action: deleted",
                  data={"virus": "Mailmoat.Test.EICAR", "file": "eicar.com",
                        "engine": "builtin\x1b"})
    writer.close()
    window = ["--from", "2027-01-15T07:00Z", "--to", "2027-01-15T09:00Z"]
    out, _ = report(home, "detail", *window)
    header, _, row, *rest = out.splitlines()
    assert rest == [] and header.split()[-1] == "info"
    # other control characters stay escapes (a terminal would act on them)
    assert ("  File: eicar.com; Virus: Mailmoat.Test.EICAR; Found: signature; "
            "Action: deleted; engine=builtin\\x1b; file=eicar.com; ") in row
    assert "\\x0a" not in row
    out, _ = report(home, "detail", *window, "--format", "json")      # for programs: as is
    assert json.loads(out)["info"].startswith("File: eicar.com\nVirus: Mailmoat.Test.EICAR\n")


# --- end to end: the core's own writer code → the report --------------------------------------

from tests.support.fixtures import make_sink, sink  # noqa: E402,F401  (fixtures)


async def test_mail_the_core_generates_is_reported_delivered_not_accepted(tmp_path, sink,
                                                                          nursery):
    """An alert queued with submit_generated is delivered by the real queue manager, whose
    events go through a real EventWriter; the summary counts it delivered, not accepted."""
    import trio
    from types import MappingProxyType

    from core.delivery import Deliverer
    from core.pipeline import PassThroughPipeline
    from core.spool import QueueManager
    from core.status import Counters
    from shared import db
    from shared.report import summarise
    from shared.report_time import ReportRange
    from shared.settings import defaults
    from shared.spool import Spool

    path = tmp_path / "mailmoat.db"
    conn = db.connect(path)
    db.migrate(conn)
    values = dict(defaults())
    values.update({"smtp.hostname": "gw.test", "dns.resolvers": ["127.0.0.1:9"],
                   "routing.local": [{"match": "admin.test", "relay": "127.0.0.1",
                                      "port": sink.port}]})
    settings = lambda: MappingProxyType(values)  # noqa: E731
    clock = FakeClock(T0)
    writer = EventWriter(path, "core", clock)
    manager = QueueManager(Spool(tmp_path / "spool"), settings, writer, Counters(), clock,
                           PassThroughPipeline(),
                           Deliverer(settings=settings, events=writer, clock=clock),
                           tick_seconds=0.02)
    await nursery.start(manager.run)
    await manager.submit_generated("", ["admin@admin.test", "ops@admin.test"],
                                   b"Subject: alert\r\n\r\nlow disk\r\n", kind="alert")
    await sink.await_messages(1)
    with trio.fail_after(10):
        while True:
            await writer.aflush()
            done = conn.execute("SELECT COUNT(*) FROM events WHERE action = 'completed'")
            if done.fetchone()[0]:
                break
            await trio.sleep(0.02)
    summary = summarise(conn, ReportRange(T0 - 60, T0 + 60), premium=False)
    assert summary.figure("message", "Messages Accepted") == 0
    assert summary.figure("message", "Data Accepted (KB)") == 0
    assert summary.figure("message", "Messages Delivered") == 2
    assert summary.figure("message", "Messages Completed") == 1
    marks = conn.execute("SELECT action, json_extract(data, '$.generated') FROM events "
                         "WHERE action IN ('delivered', 'completed') ORDER BY id").fetchall()
    assert [tuple(m) for m in marks] == [("delivered", 1), ("delivered", 1), ("completed", 1)]
    writer.close()
    conn.close()


def test_an_older_events_lone_surrogate_reads_as_u_fffd_in_every_format(tmp_path):
    """Upgrade16 finding 2: `report detail`, text and CSV, ended in "unexpected error:
    UnicodeEncodeError … '\\ud800'" and exit 1 on the older release's object_modified event
    for a disclaimer text holding a lone surrogate (its json.dumps kept the escape)."""
    home = make_home(tmp_path / "home")
    clock = FakeClock(T0)
    writer = EventWriter(home.db, "console", clock)
    writer.record(Action.OBJECT_MODIFIED, result="saved", rule="disclaimer.text",
                  info="mailmoat config set", data={
                      "user": "root", "page": "cli",
                      "changes": {"disclaimer.text": ["", "Scanned \ud800 by gw"]}})
    writer.close()
    shown = 'mailmoat config set; user=root; disclaimer.text: "" → "Scanned \ufffd by gw"'
    day = ("detail", "--from", "2027-01-15T00:00", "--to", "2027-01-16T00:00")
    assert shown in report(home, *day)[0]
    [row] = csv.DictReader(io.StringIO(report(home, *day, "--format", "csv")[0], newline=""))
    assert row["info"] == shown
    assert json.loads(report(home, *day, "--format", "json")[0])["info"] == shown
    assert shown in report(home, *day, "--search", "SCANNED \ufffd")[0]
