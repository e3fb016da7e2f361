"""What the detail report's connection and delivery events show (guide Tables 7-6, 7-8, 7-9;
SPEC §6): one core on loopback takes a few messages over real SMTP and delivers them to a
loopback sink, a closed loopback port and the drop; then the console's Detail Report and its
CSV are read through Flask's test client on the same data home.

- connection_from: result succeeded, or failed for a connection answered 421
  (delivery.reject_incoming; the per-client limit is in test_client_session_limit.py);
- connected_to: result succeeded/failed, the connection id, actual or cached (the pool);
- delivered and completed: the client IP and inbound connection id of the message's session;
- mass_mailer_cleanup: the entry of the mass mailer cleanup list that matched;
- malformed spam: the spam score and definitions in the malformed event, once in its row.

The scenario runs once for the module (one core, one sink); the tests judge its facts. A
second scenario (`pool_facts`) runs a core after an upgrade against next hops that close
their idle connections: a pooled connection found dead is a failed cached connected_to,
never a succeeded one, and the connected_to rows an older release wrote ("plain", "tls")
read as succeeded beside the new ones."""

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

from shared import db
from shared.events import Action, EventWriter
from tests.support.core import ADMIN_PASSWORD, free_port, make_home, set_settings
from tests.support.definitions import install_signature
from tests.support.scripted_server import command_lines, serve_on_loopback
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
            return any(row["queue_id"] == ids[name] for action in (
                Action.COMPLETED, Action.DEFERRED, Action.DROPPED)
                for row in events_of(home, action))

        # two messages one after the other: the second reuses the pooled connection
        await send("first", _message("first"))
        await until(lambda: ended("first"), flush=core.events.aflush)
        await send("second", _message("second"))
        await until(lambda: ended("second"), flush=core.events.aflush)
        await send("dead", _message("to a closed port", to="user@dead.test"),
                   "user@dead.test")
        await send("worm", _message("worm", attachment=b"xx" + WORM + b"yy"))
        await send("malformed", MALFORMED_SPAM)
        for name in ("dead", "worm", "malformed"):
            await until(lambda: ended(name), flush=core.events.aflush)
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


def _console_report(home, start: str, end: str, search: str = ""
                    ) -> tuple[list[dict], list[dict]]:
    """(the Detail Report page's rows, the rows of its Write to CSV) over [start, end), of
    the events the search term finds (all without one)."""
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
        url = f"/reporting/detail?generated=1&start={start}&end={end}&search={search}"
        while url:
            page = client.get(url).get_data(as_text=True)
            table = _DetailTable()
            table.feed(page)
            rows += table.rows
            found = re.search(r'href="([^"]+)" id="next-page"', page)
            url = found.group(1).replace("&amp;", "&") if found else None
        response = client.post("/reporting/detail", data={
            "start": start, "end": end, "search": search, "write_csv": "1",
            "csrf_token": token()},
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
        install_signature(home, WORM_NAME, WORM)
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


def test_a_malformed_spams_row_shows_its_score_and_definitions_once(facts):
    """The malformed event's text names the spam score and definitions and its data holds
    them too: the page's Info and Details, and the CSV's info, say each once."""
    from core.scan.antispam.definitions import current
    label = current().label
    [page] = [r for r in facts["page"] if r["Action"] == "Malformed"]
    assert "(score 100, spam definitions " in page["Info"] and label in page["Info"]
    assert "score" not in page["Details"] and label not in page["Details"]
    assert "spam_rule=heuristic.sensitivity" in page["Details"]    # what the text lacks
    [row] = [r for r in facts["csv"] if r["action"] == "malformed"]
    assert row["info"].count("score") == 1 and row["info"].count(label) == 1
    assert "score=" not in row["info"] and "definitions=" not in row["info"]
    assert row["info"].startswith(page["Info"] + "; ")


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



# --- a pooled connection the next hop closed; rows an older release wrote ---------------------

class IdleClosingHop:
    """A next hop on loopback that closes the connections it holds when told (`close_idle`),
    as a server's idle timeout does: silently, or with an unsolicited 421 first (Postfix:
    "421 4.4.2 … Error: timeout exceeded"), which the client reads as the answer to what it
    sends next. RCPT to a `later@` address gets 450: the transaction ends without the
    reply to the data, so the connection's next use starts with RSET
    (core/delivery/session.py reset_session). Plain bytes, nothing shared with core/smtp."""

    def __init__(self, farewell: bytes | None = None) -> None:
        self.farewell = farewell
        self.connections = 0
        self.messages: list[list[str]] = []
        self._open: set = set()

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await serve_on_loopback(self._handle, task_status)

    async def close_idle(self) -> int:
        streams, self._open = list(self._open), set()
        for stream in streams:
            if self.farewell:
                await stream.send_all(self.farewell + b"\r\n")
            await stream.aclose()
        return len(streams)

    async def _handle(self, stream) -> None:
        self.connections += 1
        self._open.add(stream)
        try:
            await self._session(stream)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass                                    # close_idle closed it
        finally:
            self._open.discard(stream)

    async def _session(self, stream) -> None:
        async def say(*lines: bytes) -> None:
            await stream.send_all(b"".join(line + b"\r\n" for line in lines))

        await say(b"220 hop.test ESMTP")
        recipients: list[str] = []
        in_data = False
        async for line in command_lines(stream):
            if in_data:
                if line == b".":
                    in_data = False
                    self.messages.append(recipients)
                    recipients = []
                    await say(b"250 2.0.0 queued")
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                await say(b"250-hop.test", b"250-8BITMIME", b"250 ENHANCEDSTATUSCODES")
            elif verb == b"MAIL":
                recipients = []
                await say(b"250 2.1.0 ok")
            elif verb == b"RCPT":
                address = line.decode().partition("<")[2].rstrip(">")
                if address.startswith("later@"):
                    await say(b"450 4.2.1 try again later")
                else:
                    recipients.append(address)
                    await say(b"250 2.1.5 ok")
            elif verb == b"DATA":
                in_data = bool(recipients)
                await say(b"354 go ahead" if recipients else b"554 5.5.1 no valid recipients")
            elif verb == b"RSET":
                recipients = []
                await say(b"250 2.0.0 ok")
            elif verb == b"QUIT":
                await say(b"221 2.0.0 bye")
                return
            else:
                await say(b"502 5.5.2 not implemented")


FAREWELL = b"421 4.4.2 hop.test Error: timeout exceeded"
# next hop domain -> what it says when it closes an idle connection, and the address of the
# message before it closes one: delivered (its connection is reused at once, without RSET,
# core/delivery/session.py FRESH_SECONDS), or refused 450 (the reuse starts with RSET)
POOL_HOPS = {"closing.test": (None, "user@closing.test"),
             "farewell.test": (FAREWELL, "user@farewell.test"),
             "rset.test": (FAREWELL, "later@rset.test")}
# connected_to rows as releases before 4705b58 wrote them: a connection they opened, the
# result "plain" or "tls", no connection id or `connection`
LEGACY_CONNECTED = (("plain", False, "mx1.example"), ("tls", True, "mx2.example"))


def _record_legacy_connected_to(home) -> None:
    writer = EventWriter(home.db, "core")
    try:
        for result, tls, host in LEGACY_CONNECTED:
            writer.record(Action.CONNECTED_TO, queue_id=f"OLD{result.upper()}",
                          info=f"{host}[192.0.2.7]:25", result=result,
                          data={"host": host, "address": "192.0.2.7", "port": 25, "tls": tls,
                                "next_hop": f"mx:{host}"})
        writer.flush()
    finally:
        writer.close()


async def _pool_scenario(home) -> dict:
    from core.app import run_core

    facts: dict = {"queue_ids": {}}
    started = dt.datetime.now(dt.timezone.utc)
    _record_legacy_connected_to(home)           # before the upgrade
    hops = {domain: IdleClosingHop(farewell) for domain, (farewell, _) in POOL_HOPS.items()}
    async with trio.open_nursery() as servers:
        routes = [{"match": domain, "relay": "127.0.0.1", "port": await servers.start(hop.serve)}
                  for domain, hop in hops.items()]
        set_settings(home, routing__local=routes)
        async with trio.open_nursery() as nursery:
            core = await nursery.start(run_core, home)
            port = core.smtp_addresses[0][1]
            ids = facts["queue_ids"]

            def ended(name: str) -> bool:
                return any(row["queue_id"] == ids[name] for action in (
                    Action.COMPLETED, Action.DEFERRED) for row in events_of(home, action))

            for domain, (_farewell, first) in POOL_HOPS.items():
                for name, to in ((f"{domain}-first", first), (domain, f"user@{domain}")):
                    ids[name] = await trio.to_thread.run_sync(_send, port, _message(name, to),
                                                              to)
                    await until(lambda: ended(name), flush=core.events.aflush)
                    if name != domain:      # the next hop drops the pooled connection
                        assert await hops[domain].close_idle() == 1
            core.cancel_scope.cancel()
        servers.cancel_scope.cancel()
    facts["hops"] = hops
    facts["events"] = _rows(home)
    start = (started - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    end = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2)).strftime(
        "%Y-%m-%dT%H:%M")
    facts["page"], facts["csv"] = _console_report(home, start, end)
    facts["found_page"], facts["found_csv"] = _console_report(home, start, end, "succeeded")
    return facts


@pytest.fixture(scope="module")
def pool_facts(tmp_path_factory) -> dict:
    home = make_home(tmp_path_factory.mktemp("pool-events") / "home",
                     delivery__retry_initial_seconds=3600, delivery__retry_max_seconds=3600)
    return trio.run(_pool_scenario, home)


@pytest.mark.parametrize("domain", POOL_HOPS)
def test_a_pooled_connection_the_next_hop_closed_is_a_failed_cached_connected_to(pool_facts,
                                                                                 domain):
    """Guide Table 7-6: the connection's result. The pooled connection the first message left
    was dead when the second took it (closed silently, a 421 at MAIL or at RSET): its row
    says failed, and the actual connection that delivered the message follows."""
    # (the message refused 450 may be tried again once the hop took another: more rows)
    opened = _of(pool_facts, Action.CONNECTED_TO, f"{domain}-first")[0]
    assert (opened["result"], opened["data"]["connection"]) == ("succeeded", "actual")
    cached, actual = _of(pool_facts, Action.CONNECTED_TO, domain)
    assert (cached["result"], cached["data"]["connection"]) == ("failed", "cached")
    assert cached["connection_id"] == opened["connection_id"]
    assert cached["info"].startswith("cached connection to 127.0.0.1[127.0.0.1]:")
    assert ", no TLS: " in cached["info"]                   # then why it failed
    if domain == "farewell.test" and "RSET" not in cached["info"]:
        assert cached["info"].endswith(": " + FAREWELL.decode())    # its 421, as said
    assert (actual["result"], actual["data"]["connection"]) == ("succeeded", "actual")
    assert actual["connection_id"] != cached["connection_id"]
    [delivered] = _of(pool_facts, Action.DELIVERED, domain)
    assert delivered["recipients"] == f"user@{domain}"
    assert pool_facts["hops"][domain].connections == 2


@pytest.mark.parametrize("domain", POOL_HOPS)
def test_the_report_shows_the_dead_pooled_connection_failed_then_the_actual_one(pool_facts,
                                                                                domain):
    queue_id = pool_facts["queue_ids"][domain]
    page = [(r["Result"], r["Info"].split(" ", 1)[0]) for r in pool_facts["page"]
            if r["Action"] == "Connected to" and r["Queue id"] == queue_id]
    table = [(r["result"], r["info"].split(" ", 1)[0]) for r in pool_facts["csv"]
             if r["action"] == "connected_to" and r["queue_id"] == queue_id]
    assert page == table == [("failed", "cached"), ("succeeded", "actual")]


def test_connected_to_rows_an_older_release_wrote_read_as_succeeded_actual(pool_facts):
    """Across an upgrade every connected_to row speaks today's words (succeeded/failed,
    actual/cached): the old "plain"/"tls" results read as succeeded actual connections, on
    the page, in the CSV and for the search; TLS stays in the details."""
    stored = {row["queue_id"]: row["result"] for row in _of(pool_facts, Action.CONNECTED_TO)
              if row["queue_id"].startswith("OLD")}
    assert stored == {"OLDPLAIN": "plain", "OLDTLS": "tls"}      # not rewritten
    page = [r for r in pool_facts["page"] if r["Action"] == "Connected to"]
    table = [r for r in pool_facts["csv"] if r["action"] == "connected_to"]
    assert {r["Result"] for r in page} == {r["result"] for r in table} == {"succeeded",
                                                                         "failed"}
    for result, tls, host in LEGACY_CONNECTED:
        [shown] = [r for r in page if r["Queue id"] == f"OLD{result.upper()}"]
        [row] = [r for r in table if r["queue_id"] == f"OLD{result.upper()}"]
        assert shown["Result"] == row["result"] == "succeeded"
        assert "connection=actual" in shown["Details"] and "connection=actual" in row["info"]
        assert f"tls={'true' if tls else 'false'}" in row["info"]
        assert row["info"].startswith(f"{host}[192.0.2.7]:25; ")
    found = {r["Queue id"] for r in pool_facts["found_page"] if r["Action"] == "Connected to"}
    assert {"OLDPLAIN", "OLDTLS"} <= found
    assert {r["queue_id"] for r in pool_facts["found_csv"]} >= {"OLDPLAIN", "OLDTLS"}
