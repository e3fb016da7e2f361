"""What the detail report's connection and delivery events show (guide Tables 7-6, 7-8, 7-9;
SPEC §6): one core on loopback takes a few messages over real SMTP and delivers them to a
loopback sink, a closed loopback port and the drop; then the console's Detail Report and its
CSV are read through Flask's test client on the same data home.

- connection_from: result succeeded, or failed for a connection answered 421
  (delivery.reject_incoming; the per-client limit is in test_client_session_limit.py);
- connected_to: result succeeded/failed, the connection id, actual or cached (the pool);
- delivered and completed: the client IP and inbound connection id of the message's session;
- mass_mailer_cleanup: the entry of the mass mailer cleanup list that matched;
- malformed spam: the spam score and definitions in the malformed event.

The scenario runs once for the module (one core, one sink); the tests judge its facts."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import smtplib
import socket
from email.message import EmailMessage
from html.parser import HTMLParser

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import db, definitions as defs
from shared.events import Action
from tests.support.core import ADMIN_PASSWORD, free_port, make_home, set_settings
from tests.support.sink import Sink
from tests.support.waiting import events_of, until

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
WORM = b"MAILMOAT-TEST-MASS-MAILER-WORM-0001"
WORM_NAME = "Test.Worm@mm"
# A message that is spam (GTUBE) and malformed (its multipart never closes).
MALFORMED_SPAM = (b"From: b@client.test\r\nTo: user@local.test\r\nSubject: Broken\r\n"
                  b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
                  b"--b\r\nContent-Type: text/plain\r\n\r\n" + GTUBE.encode() + b"\r\n")


def _message(subject: str, to: str = "user@local.test", attachment: bytes | None = None
             ) -> bytes:
    msg = EmailMessage()
    msg["From"] = "sender@client.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(f"{subject}\n")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream",
                           filename="worm.bin")
    return msg.as_bytes()


def _send(port: int, data: bytes, to: str = "user@local.test") -> str:
    """The queue id of the 250 to the data."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.mail("sender@client.test")
        client.rcpt(to)
        code, reply = client.data(data)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[-1]


def _greeting(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return sock.recv(512)


def _install_worm_definitions(home) -> None:
    """Virus definitions that name WORM a mass mailer (a signed package, installed)."""
    key = Ed25519PrivateKey.generate()
    source = home.root.parent / "worm-definitions"
    source.mkdir()
    (source / "mailmoat.ndb").write_text(f"{WORM_NAME}:0:*:{WORM.hex()}\n")
    package = home.root.parent / "worm.mmdef"
    defs.build_package(source, key, package, version="2026-12-01", revision=1)
    defs.install_package(package, home.definitions, [defs.public_key_b64(key)])


def _rows(home) -> list[dict]:
    conn = db.connect(home.db)
    try:
        rows = [dict(row) for row in conn.execute("SELECT * FROM events ORDER BY id")]
    finally:
        conn.close()
    for row in rows:
        row["data"] = json.loads(row["data"]) if row["data"] else {}
    return rows


async def _scenario(home, sink) -> dict:
    from core.app import run_core

    facts: dict = {"queue_ids": {}}
    started = dt.datetime.now(dt.timezone.utc)
    async with trio.open_nursery() as nursery:
        core = await nursery.start(run_core, home)
        port = core.smtp_addresses[0][1]
        ids = facts["queue_ids"]

        async def send(name: str, data: bytes, to: str = "user@local.test") -> None:
            ids[name] = await trio.to_thread.run_sync(_send, port, data, to)

        def ended(name: str) -> bool:
            core.events.flush()
            return any(row["queue_id"] == ids[name] for action in (
                Action.COMPLETED, Action.DEFERRED, Action.DROPPED)
                for row in events_of(home, action))

        # two messages one after the other: the second reuses the pooled connection
        await send("first", _message("first"))
        await until(lambda: ended("first"))
        await send("second", _message("second"))
        await until(lambda: ended("second"))
        await send("dead", _message("to a closed port", to="user@dead.test"),
                   "user@dead.test")
        await send("worm", _message("worm", attachment=b"xx" + WORM + b"yy"))
        await send("malformed", MALFORMED_SPAM)
        for name in ("dead", "worm", "malformed"):
            await until(lambda: ended(name))
        facts["malformed_delivered"] = [m.data for m in await trio.to_thread.run_sync(
            sink.wait_for, 3)][-1]
        set_settings(home, delivery__reject_incoming=True)
        with trio.fail_after(10):
            while not (await trio.to_thread.run_sync(_greeting, port)).startswith(b"421"):
                await trio.sleep(0.1)
        set_settings(home, delivery__reject_incoming=False)
        with trio.fail_after(10):
            while not (await trio.to_thread.run_sync(_greeting, port)).startswith(b"220"):
                await trio.sleep(0.1)
        core.cancel_scope.cancel()
    facts["events"] = _rows(home)
    # the console's view of the same range (the pickers read minutes in the timezone, UTC)
    start = (started - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    end = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2)).strftime(
        "%Y-%m-%dT%H:%M")
    facts["page"], facts["csv"] = _console_report(home, start, end)
    return facts


class _DetailTable(HTMLParser):
    """The rows of the Detail Report's table, each a dict by column title."""

    def __init__(self) -> None:
        super().__init__()
        self.titles: list[str] = []
        self.rows: list[dict] = []
        self._cells: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        if tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._cells = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._cells is not None:
            self._cells.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._cells is not None:
            if self._in_head:
                self.titles = self._cells
            elif self.titles:
                self.rows.append(dict(zip(self.titles, self._cells)))
            self._cells = None
        elif tag == "thead":
            self._in_head = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _console_report(home, start: str, end: str) -> tuple[list[dict], list[dict]]:
    """(the Detail Report page's rows, the rows of its Write to CSV) over [start, end)."""
    from console.app import create_app

    app = create_app(home, config={"TESTING": True})
    try:
        client = app.test_client()
        headers = {"Referer": "http://localhost/"}

        def token() -> str:
            page = client.get("/logon").get_data(as_text=True)
            if "csrf_token" not in page:
                page = client.get("/status/").get_data(as_text=True)
            return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                             page).group(1)

        response = client.post("/logon", data={"username": "admin", "password": ADMIN_PASSWORD,
                                               "csrf_token": token()}, headers=headers)
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]
        rows: list[dict] = []
        url = f"/reporting/detail?generated=1&start={start}&end={end}"
        while url:
            page = client.get(url).get_data(as_text=True)
            table = _DetailTable()
            table.feed(page)
            rows += table.rows
            found = re.search(r'href="([^"]+)" id="next-page"', page)
            url = found.group(1).replace("&amp;", "&") if found else None
        response = client.post("/reporting/detail", data={
            "start": start, "end": end, "write_csv": "1", "csrf_token": token()},
            headers=headers)
        assert response.mimetype == "text/csv", response.get_data(as_text=True)[:2000]
        return rows, list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    finally:
        app.extensions["mailmoat"].close()


@pytest.fixture(scope="module")
def facts(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("detail-events")
    with Sink() as sink:
        home = make_home(
            root / "home",
            routing__local=[{"match": "local.test", "relay": "127.0.0.1", "port": sink.port},
                            {"match": "dead.test", "relay": "127.0.0.1", "port": free_port()}],
            # one delivery attempt to the closed port in the scenario, not a retry a second
            delivery__retry_initial_seconds=3600, delivery__retry_max_seconds=3600,
            heuristic__enabled=True, heuristic__x_bulk=True)
        _install_worm_definitions(home)
        return trio.run(_scenario, home, sink)


def _of(facts, action: Action, name: str | None = None) -> list[dict]:
    queue_id = facts["queue_ids"][name] if name else None
    return [row for row in facts["events"] if row["action"] == action
            and (name is None or row["queue_id"] == queue_id)]


def _session_of(facts, name: str) -> tuple[str, str]:
    """(client IP, connection id) of the SMTP session that brought message `name`."""
    [accepted] = _of(facts, Action.ACCEPTED, name)
    return accepted["client_ip"], accepted["connection_id"]


# --- connection_from ----------------------------------------------------------------------

def test_connection_from_says_whether_the_connection_succeeded(facts):
    rows = _of(facts, Action.CONNECTION_FROM)
    assert {row["result"] for row in rows} == {"succeeded", "failed"}
    for name in ("first", "second", "dead", "worm", "malformed"):
        _ip, connection = _session_of(facts, name)
        [row] = [r for r in rows if r["connection_id"] == connection]
        assert (row["result"], row["client_ip"]) == ("succeeded", "127.0.0.1")


def test_a_connection_answered_421_is_a_failed_connection_from(facts):
    failed = [row for row in _of(facts, Action.CONNECTION_FROM) if row["result"] == "failed"]
    refused = [row for row in _of(facts, Action.REJECTED)
               if row["rule"] == "delivery.reject_incoming"]
    assert failed and len(failed) == len(refused)
    assert {row["connection_id"] for row in failed} == {row["connection_id"] for row in refused}
    assert {(row["rule"], row["client_ip"]) for row in failed} == {
        ("delivery.reject_incoming", "127.0.0.1")}


# --- connected_to ---------------------------------------------------------------------------

def test_a_new_connection_is_actual_and_a_pooled_one_cached_both_succeeded(facts):
    [opened] = _of(facts, Action.CONNECTED_TO, "first")
    [reused] = _of(facts, Action.CONNECTED_TO, "second")
    assert opened["result"] == reused["result"] == "succeeded"
    assert opened["connection_id"] and reused["connection_id"] == opened["connection_id"]
    assert opened["data"]["connection"] == "actual"
    assert reused["data"]["connection"] == "cached"
    assert opened["info"].startswith("actual connection to 127.0.0.1[127.0.0.1]:")
    assert reused["info"].startswith("cached connection to 127.0.0.1[127.0.0.1]:")
    for row in (opened, reused):        # TLS is said, not in place of the result
        assert row["info"].endswith(", no TLS") and row["data"]["tls"] is False


def test_a_connection_that_cannot_be_opened_is_one_failed_connected_to(facts):
    [failed] = _of(facts, Action.CONNECTED_TO, "dead")
    assert failed["result"] == "failed" and failed["connection_id"]
    assert "Connection refused" in failed["info"]
    assert failed["data"]["connection"] == "actual"
    [deferred] = _of(facts, Action.DEFERRED, "dead")
    assert "Connection refused" in deferred["info"]


# --- delivered and completed -----------------------------------------------------------------

def test_delivered_and_completed_carry_the_client_ip_and_inbound_connection_id(facts):
    for name in ("first", "second", "malformed"):
        client_ip, connection = _session_of(facts, name)
        assert client_ip == "127.0.0.1" and connection
        [delivered] = _of(facts, Action.DELIVERED, name)
        [completed] = _of(facts, Action.COMPLETED, name)
        for row in (delivered, completed):
            assert (row["client_ip"], row["connection_id"]) == (client_ip, connection), name
    [deferred] = _of(facts, Action.DEFERRED, "dead")
    assert (deferred["client_ip"], deferred["connection_id"]) == _session_of(facts, "dead")


# --- blocking events ---------------------------------------------------------------------------

def test_mass_mailer_cleanup_names_the_matching_entry_of_the_list(facts):
    [cleanup] = _of(facts, Action.MASS_MAILER_CLEANUP, "worm")
    assert cleanup["data"]["virus"] == WORM_NAME and cleanup["data"]["file"] == "worm.bin"
    assert cleanup["data"]["mmc_entry"] == "@mm"
    assert "Mass mailer cleanup list entry: @mm" in cleanup["info"]


def test_spam_that_is_also_malformed_has_its_score_in_the_malformed_event(facts):
    from core.scan.antispam.definitions import current
    assert b"Subject: [Spam] Broken" in facts["malformed_delivered"]
    assert b"X-Bulk: 100" in facts["malformed_delivered"]
    assert not _of(facts, Action.HEURISTIC_SPAM, "malformed")     # guide Table 7-9
    [malformed] = _of(facts, Action.MALFORMED, "malformed")
    assert malformed["info"].startswith("MIME defects: ")
    assert "Message is considered to be spam (score 100, spam definitions " in malformed["info"]
    assert current().label in malformed["info"]
    assert malformed["data"]["score"] == 100
    assert malformed["data"]["definitions"] == current().label


# --- the console ------------------------------------------------------------------------------

def test_the_detail_report_page_and_its_csv_show_the_new_fields(facts):
    connection = _session_of(facts, "first")[1]
    first = facts["queue_ids"]["first"]
    page, table = facts["page"], facts["csv"]

    def by(rows, key, action, value=None):
        return [r for r in rows if r[key] == action and (value is None or value in r.values())]

    # the page names an action as its checkbox does, the CSV by its identifier
    for rows, key, names in ((page, "Action", ("Connection from", "Connected to", "Delivered",
                                                "Completed", "Mass mailer cleanup",
                                                "Malformed")),
                             (table, "action", ("connection_from", "connected_to", "delivered",
                                                "completed", "mass_mailer_cleanup",
                                                "malformed"))):
        result, ip, conn_id, info = (("Result", "Client IP", "Connection id", "Info")
                                     if rows is page else
                                     ("result", "client_ip", "connection_id", "info"))
        connected_from, connected_to, delivered, completed, cleanup, malformed = names
        assert {r[result] for r in by(rows, key, connected_from)} == {"succeeded", "failed"}
        assert {r[result] for r in by(rows, key, connected_to)} == {"succeeded", "failed"}
        assert any(r[info].startswith("cached connection to ")
                   for r in by(rows, key, connected_to))
        for action in (delivered, completed):
            [row] = by(rows, key, action, connection)
            assert row[ip] == "127.0.0.1" and row[conn_id] == connection
            assert first in row.values()
        [row] = by(rows, key, cleanup)
        assert "Mass mailer cleanup list entry: @mm" in row[info]
        [row] = by(rows, key, malformed)
        assert "score 100" in row[info]
    # the data's facts: the page's Details column, the CSV's info
    cached = [r for r in by(page, "Action", "Connected to") if "cached" in r["Info"]]
    assert cached and all("connection=cached" in r["Details"] for r in cached)
    cached = [r for r in by(table, "action", "connected_to") if "cached" in r["info"]]
    assert cached and all("connection=cached" in r["info"] for r in cached)

