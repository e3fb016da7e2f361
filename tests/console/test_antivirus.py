"""Antivirus Policy pages: settings and outbreak forms from the schema (saves, validation,
object_modified), the virus quarantine list and its password-protected download, roles."""

from __future__ import annotations

import html
import io
import re

import py7zr
import pytest

from shared.events import Action
from shared.spool import Envelope, Spool

from .test_configuration import _form_fields

EICAR_MAIL = (b"From: a@outside.test\r\nTo: user@local.test\r\nSubject: infected\r\n\r\n"
              b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*\r\n")


def _quarantine(home, queue_id="0123456789AB", **meta):
    spool = Spool(home.spool)
    incoming = spool.open_incoming(queue_id)
    incoming.write(EICAR_MAIL)
    envelope = Envelope.new(queue_id, "a@outside.test", ["user@local.test"],
                            meta={"kind": "virus_quarantine", "virus": ["Mailmoat.Test.EICAR"],
                                  "files": ["message"], "actions": ["drop"],
                                  "quarantined_at": 1_800_000_000, **meta})
    spool.commit([incoming.prepare(envelope)], "quarantine/virus")
    return queue_id


@pytest.mark.parametrize("url", ["/antivirus/", "/antivirus/outbreak"])
def test_unchanged_submit_changes_nothing(admin, url):
    before = admin.settings()
    response = admin.post(url, _form_fields(admin, url))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert admin.settings() == before


def test_antivirus_settings_saved_with_event(admin):
    data = _form_fields(admin, "/antivirus/")
    data["av__engine"] = "both"
    data["av__heuristics"] = "high"
    data["av__quarantine"] = "unrepaired"
    data["av__central_quarantine___host"] = "quarantine.example.test"
    data["av__central_quarantine___port"] = "2525"
    assert admin.post("/antivirus/", data).status_code == 302
    values = admin.settings()
    assert values["av.engine"] == "both" and values["av.heuristics"] == "high"
    assert values["av.central_quarantine"] == {"host": "quarantine.example.test", "port": 2525}
    event = admin.events(Action.OBJECT_MODIFIED)[-1]
    assert event["data"]["page"] == "antivirus"
    page = admin.get("/antivirus/").get_data(as_text=True)
    assert "Changes saved." in page and "Virus definitions in force" in page


def test_a_copy_the_central_quarantine_refused_says_why(admin, home):
    _quarantine(home, "0123456789AC", central={
        "host": "cq.example.test", "port": 25, "state": "failed",
        "last_error": "550 5.7.1 Relaying denied"})
    _quarantine(home, "0123456789AD", central={"host": "cq.example.test", "port": 25,
                                                "state": "pending"})
    page = admin.get("/antivirus/quarantine").get_data(as_text=True)
    assert "<td>failed: 550 5.7.1 Relaying denied</td>" in page
    assert "<td>pending</td>" in page


def test_engine_names_are_written_as_their_owners_write_them(admin):
    # guide36 finding 7 (the Logging tab's "Tcp"; here "Clamd" and "Builtin")
    html = admin.get("/antivirus/").get_data(as_text=True)
    [body] = re.findall(r'<select[^>]*name="av__engine"[^>]*>(.*?)</select>', html, re.S)
    assert re.findall(r"<option[^>]*>([^<]*)</option>", body) == ["Built-in", "clamd", "Both"]


def test_outbreak_bad_value_shows_schema_message(admin):
    data = _form_fields(admin, "/antivirus/outbreak")
    data["outbreak__count"] = "0"
    response = admin.post("/antivirus/outbreak", data)
    assert response.status_code == 200
    assert "must be between 1 and 100000" in response.get_data(as_text=True)
    assert admin.settings()["outbreak.count"] == 10


def test_virus_quarantine_list_and_safe_download(admin, home):
    queue_id = _quarantine(home)
    page = admin.get("/antivirus/quarantine").get_data(as_text=True)
    assert "Mailmoat.Test.EICAR" in page and "a@outside.test" in page
    assert "<td>message dropped</td>" in page       # the action in words, not "drop"
    response = admin.get(f"/antivirus/quarantine/{queue_id}/download")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].endswith(f'virus-{queue_id}.7z"')
    data = response.data
    assert b"EICAR" not in data                                   # encrypted, names too
    out = home.root / "extracted"
    with py7zr.SevenZipFile(io.BytesIO(data), password="infected") as archive:
        archive.extractall(path=out)
    assert (out / f"{queue_id}.eml").read_bytes() == EICAR_MAIL
    assert admin.get("/antivirus/quarantine/NOPE/download").status_code == 404
    assert admin.get("/antivirus/quarantine/..%2F..%2Fmailmoat.db/download").status_code == 404


def test_report_only_administrator_is_refused(reporter):
    for url in ("/antivirus/", "/antivirus/outbreak", "/antivirus/quarantine"):
        assert reporter.get(url).status_code == 403
    for url in ("/antivirus/quarantine/delete-all", "/antivirus/quarantine/central-resend-all"):
        assert reporter.post(url, {"central": "", "confirmed": "1:x",
                                   "confirm": "1"}).status_code == 403


def test_outbreak_tab_warns_without_recipients(admin):
    admin.set(outbreak__enabled=True)
    assert "outbreak-no-recipients" in admin.get("/antivirus/outbreak").get_data(as_text=True)
    admin.set(outbreak__emails=["sec@example.test"])
    assert "outbreak-no-recipients" not in admin.get("/antivirus/outbreak").get_data(as_text=True)


def test_status_page_shows_definitions_and_infection_counters(admin, home, clock):
    from shared import db
    from shared.status import new_snapshot, write_snapshot
    counters = {name: 0 for name in ("infections_repaired", "infections_deleted",
                                     "infections_logged", "mass_mailers_deleted")}
    counters.update(infections_repaired=2, infections_deleted=3, infections_logged=4,
                    mass_mailers_deleted=5)
    snap = new_snapshot(version="1", hostname="gw.test", smtp_port=25,
                        started_at=clock.now() - 60,
                        definitions={"virus": {"version": "2026-12-01", "revision": 7,
                                               "source": "installed", "date": "2026-12-01"},
                                     "spam": None})
    snap["counters"].update(counters)
    conn = db.connect(home.db)
    try:
        write_snapshot(conn, snap, now=clock.now())
    finally:
        conn.close()
    page = admin.get("/status/").get_data(as_text=True)
    assert "version 2026-12-01 revision 7 (installed)" in page   # as `definitions status`
    assert "Mass mailers deleted" in page and ">5<" in page.replace(" ", "")
    # the Antivirus page says the same: what the core scans with, not what is on disk
    page = admin.get("/antivirus/").get_data(as_text=True)
    assert "Virus definitions in force: version 2026-12-01 revision 7 (installed)." in page


# --- the central quarantine's mailbox (guide finding 1) ----------------------------------

def _submitted_page(admin) -> dict:
    """The Antivirus Settings form as a browser submits it unchanged, hidden fields too."""
    import html
    import re
    data = _form_fields(admin, "/antivirus/")
    page = admin.get("/antivirus/").get_data(as_text=True)
    for name, value in re.findall(r'<input id="[^"]*" name="([^"]+)" type="hidden" '
                                  r'value="([^"]*)"', page):
        data[name] = html.unescape(value)
    return data


def test_central_quarantine_mailbox_saved_shown_and_cleared(admin):
    data = _submitted_page(admin)
    data["av__central_quarantine___host"] = "cq.example.test"
    data["av__central_quarantine___port"] = "2525"
    data["av__central_quarantine___mailbox"] = "virus-vault@example.test"
    assert admin.post("/antivirus/", data).status_code == 302
    assert admin.settings()["av.central_quarantine"] == {
        "host": "cq.example.test", "port": 2525, "mailbox": "virus-vault@example.test"}
    page = admin.get("/antivirus/").get_data(as_text=True)
    assert 'name="av__central_quarantine___mailbox" type="text" ' \
           'value="virus-vault@example.test"' in page
    assert "X-Mailmoat-Quarantine-*" in page and "quarantine.reinsertion_key" in page
    unchanged = _submitted_page(admin)
    assert admin.post("/antivirus/", unchanged).status_code == 302      # kept as it was
    assert admin.settings()["av.central_quarantine"]["mailbox"] == "virus-vault@example.test"
    cleared = _submitted_page(admin)
    cleared["av__central_quarantine___mailbox"] = ""
    assert admin.post("/antivirus/", cleared).status_code == 302
    assert admin.settings()["av.central_quarantine"] == {"host": "cq.example.test",
                                                         "port": 2525}


def test_a_bad_central_quarantine_mailbox_is_refused_with_the_schema_message(admin):
    data = _submitted_page(admin)
    data["av__central_quarantine___host"] = "cq.example.test"
    data["av__central_quarantine___mailbox"] = "not an address"
    response = admin.post("/antivirus/", data)
    assert response.status_code == 200
    assert "mailbox: must be a full email address" in response.get_data(as_text=True)
    assert admin.settings()["av.central_quarantine"] is None


def test_a_mailbox_without_a_host_is_refused_not_dropped(admin):
    """Console review: a mailbox typed with no host was dropped without a word."""
    data = _submitted_page(admin)
    data["av__central_quarantine___mailbox"] = "vault@example.test"
    response = admin.post("/antivirus/", data)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "mailbox needs the host: type the host, or clear the mailbox" in page, \
        page[page.find("<main"):]
    assert admin.settings()["av.central_quarantine"] is None


def test_a_central_quarantine_changed_elsewhere_is_kept_or_the_save_refused(admin):
    admin.set(av__central_quarantine={"host": "cq.example.test", "port": 25,
                                      "mailbox": "vault@example.test"})
    shown = _submitted_page(admin)
    newer = {"host": "cq2.example.test", "port": 25, "mailbox": "vault2@example.test"}
    admin.set(av__central_quarantine=newer)                # `mailmoat config set` meanwhile
    other_change = dict(shown, av__heuristics="high")      # this page changed something else
    assert admin.post("/antivirus/", other_change).status_code == 302
    assert admin.settings()["av.central_quarantine"] == newer
    assert admin.settings()["av.heuristics"] == "high"
    mailbox_change = dict(shown, av__central_quarantine___mailbox="mine@example.test")
    response = admin.post("/antivirus/", mailbox_change)
    assert response.status_code == 200
    assert "was changed elsewhere" in response.get_data(as_text=True)
    assert admin.settings()["av.central_quarantine"] == newer


def test_a_copy_received_from_a_gateway_says_so_in_the_list(admin, home):
    queue_id = _quarantine(home)
    spool = Spool(home.spool)
    envelope = spool.read_envelope("quarantine/virus", queue_id)
    envelope.meta["received"] = {"gateway": "gw.example.test", "sender": "",
                                 "recipients": ["quarantine@cq.example.test"]}
    spool.write_envelope("quarantine/virus", envelope)
    page = admin.get("/antivirus/quarantine").get_data(as_text=True)
    assert "<td>received from gw.example.test</td>" in page


def test_the_actions_say_what_they_do_and_that_log_leaves_the_drop_to_the_third(admin):
    """Guide tester 11(e): "Log" carried no hint that with the default "If an infected file
    is not removed: Drop" the message is then dropped."""
    page = html.unescape(admin.get("/antivirus/").get_data(as_text=True))
    hint = " ".join(page.split('id="action-help"', 1)[1].split("</p>", 1)[0].split())
    assert "Log logs the incident and leaves the file in the message" in hint.replace(
        "<em>", "").replace("</em>", "")
    assert "with its default, <em>Drop</em>, the message is dropped" in hint


# --- Send to central quarantine again (core/scan/central_forwarder.py rule 4) -----------------

RESEND = "/antivirus/quarantine/central-resend"
CENTRAL = {"host": "cq.example.test", "port": 25}


def _failed_and_pending(home) -> tuple[str, str]:
    failed = _quarantine(home, "0123456789AC", central={
        **CENTRAL, "state": "failed", "last_error": "expired after 5 days: 421 4.3.2 busy"})
    pending = _quarantine(home, "0123456789AD", central={**CENTRAL, "state": "pending"})
    return failed, pending


def test_send_again_asks_the_core_for_the_selected_failed_copies(admin, home):
    admin.set(av__central_quarantine=CENTRAL)
    failed, _pending = _failed_and_pending(home)
    page = admin.get("/antivirus/quarantine").get_data(as_text=True)
    assert f'formaction="{RESEND}"' in page and 'value="Send to central quarantine again"' in page
    response = admin.post(RESEND, {"ids": [failed], "central_resend": "1"})
    assert response.status_code == 302 and response.headers["Location"].endswith(
        "/antivirus/quarantine")
    [command] = admin.commands()
    assert (command["kind"], command["args"], command["requested_by"], command["state"]) == \
        ("virus_quarantine.central_resend", {"ids": [failed]}, "admin", "pending")
    event = admin.events(Action.OBJECT_MODIFIED)[-1]
    assert event["data"]["command"] == "virus_quarantine.central_resend"
    assert event["data"]["args"] == {"ids": [failed]}
    page = admin.get("/antivirus/quarantine").get_data(as_text=True)
    assert "to the central quarantine again within a few seconds" in page
    # until the core has done it, the copy shows as waiting again, and no copy as failed
    assert "failed: expired" not in page and page.count("<td>pending</td>") == 2
    assert f'formaction="{RESEND}"' not in page


@pytest.mark.parametrize("central, pick, message", [
    (None, "failed", "the central quarantine is off: set its host on the Antivirus Settings "
                     "tab first"),
    (CENTRAL, "pending", "only copies whose sending to the central quarantine failed can be "
                         "sent again, not 0123456789AD"),
    (CENTRAL, "none", "select the messages to send to the central quarantine again"),
])
def test_send_again_is_refused_with_the_reason_and_asks_nothing(admin, home, central, pick,
                                                                 message):
    admin.set(av__central_quarantine=central)
    failed, pending = _failed_and_pending(home)
    ids = {"failed": [failed], "pending": [failed, pending], "none": []}[pick]
    response = admin.post(RESEND, {"ids": ids}, follow_redirects=True)
    assert response.status_code == 200
    assert "Nothing was sent again: " + message in html.unescape(
        response.get_data(as_text=True))
    assert admin.commands() == []


def test_send_again_needs_the_csrf_token_and_an_administrator(admin, reporter, home):
    admin.set(av__central_quarantine=CENTRAL)
    failed, _pending = _failed_and_pending(home)
    assert admin.post(RESEND, {"ids": [failed]}, csrf=False).status_code == 400
    assert reporter.post(RESEND, {"ids": [failed]}).status_code == 403
    assert reporter.events(Action.UNAUTHORIZED_ACCESS)[-1]["data"] == {
        "user": "report", "path": RESEND}
    assert admin.commands() == []


# --- thousands of copies: pages, the central filter, every page at once (guide45 finding 2) --
# Before, the page listed the newest 500 copies and no more, with no filter and no
# select-all: after a long central outage the oldest failed copies could be neither sent
# again nor deleted from the console.

from console.antivirus.service import IDS_PER_COMMAND, PAGE_SIZE  # noqa: E402
from shared.spool import new_queue_id  # noqa: E402

QUARANTINE = "/antivirus/quarantine"
FAILED = {**CENTRAL, "state": "failed", "last_error": "550 5.7.1 relay denied"}


def _many(home, count: int, **meta) -> list[str]:
    """`count` copies kept one after another; their queue ids, oldest first."""
    return [_quarantine(home, new_queue_id(), **meta) for _ in range(count)]


def _listed(page: str) -> list[str]:
    return re.findall(r'name="ids" value="([^"]+)"', page)


def _count_line(page: str) -> str:
    [line] = re.findall(r'<p id="virus-quarantine-count">(.*?)</p>', page, re.S)
    return " ".join(html.unescape(line).split())


def test_the_list_reaches_every_copy_a_page_at_a_time_newest_first(admin, home):
    ids = _many(home, 2 * PAGE_SIZE + 5)
    newest_first = ids[::-1]
    first = admin.get(QUARANTINE).get_data(as_text=True)
    assert _listed(first) == newest_first[:PAGE_SIZE]
    assert _count_line(first) == (f"{len(ids)} message(s). Messages 1–{PAGE_SIZE} of "
                                  f"{len(ids)}, newest first; page 1 of 3.")
    [oldest_link] = re.findall(r'<a href="([^"]+)" id="last-page">Oldest</a>', first)
    last = admin.get(html.unescape(oldest_link)).get_data(as_text=True)
    assert _listed(last) == newest_first[2 * PAGE_SIZE:]           # the oldest five
    assert "page 3 of 3" in _count_line(last) and 'id="next-page"' not in last
    [newer] = re.findall(r'<a href="([^"]+)" id="previous-page"', last)
    assert _listed(admin.get(html.unescape(newer)).get_data(as_text=True)) == \
        newest_first[PAGE_SIZE:2 * PAGE_SIZE]
    # a page beyond the last shows the last; one that is no number, the first
    assert _listed(admin.get(QUARANTINE + "?page=99").get_data(as_text=True)) == \
        newest_first[2 * PAGE_SIZE:]
    assert _listed(admin.get(QUARANTINE + "?page=x").get_data(as_text=True)) == \
        newest_first[:PAGE_SIZE]


def test_the_central_filter_lists_the_copies_in_that_state(admin, home):
    admin.set(av__central_quarantine=CENTRAL)
    failed = _many(home, 3, central=FAILED)
    pending = _many(home, 2, central={**CENTRAL, "state": "pending"})
    sent = _many(home, 1, central={**CENTRAL, "state": "sent"})
    unmarked = _many(home, 1)                       # kept while the central quarantine was off
    page = admin.get(QUARANTINE + "?central=failed").get_data(as_text=True)
    assert _listed(page) == failed[::-1]
    assert _count_line(page).startswith(
        "7 message(s); those whose sending to the central quarantine failed: 3.")
    assert '<option value="failed" selected>failed</option>' in page
    assert _listed(admin.get(QUARANTINE + "?central=sent").get_data(as_text=True)) == sent
    assert _listed(admin.get(QUARANTINE).get_data(as_text=True)) == \
        (failed + pending + sent + unmarked)[::-1]
    # one is asked to be sent again: pending until the core has done it
    admin.post(RESEND, {"ids": [failed[0]]})
    assert _listed(admin.get(QUARANTINE + "?central=failed").get_data(as_text=True)) == \
        failed[:0:-1]
    assert _listed(admin.get(QUARANTINE + "?central=pending").get_data(as_text=True)) == \
        pending[::-1] + [failed[0]]
    # the core's own change of a copy shows at the next look
    spool = Spool(home.spool)
    envelope = spool.read_envelope("quarantine/virus", failed[2])
    envelope.meta["central"] = {**CENTRAL, "state": "sent"}
    spool.write_envelope("quarantine/virus", envelope)
    assert _listed(admin.get(QUARANTINE + "?central=failed").get_data(as_text=True)) == \
        [failed[1]]
    assert _listed(admin.get(QUARANTINE + "?central=sent").get_data(as_text=True)) == \
        sent + [failed[2]]
    # an unknown filter is no filter
    assert len(_listed(admin.get(QUARANTINE + "?central=bogus").get_data(as_text=True))) == 7


def test_a_filtered_view_reads_again_only_the_envelopes_of_its_own_rows(admin, home,
                                                                        monkeypatch):
    """review14 B8: the filter needs every copy's central state, and a quarantine may hold
    thousands of copies. The states are kept by envelope file, so a second filtered view
    with nothing changed reads no envelope for the filter, only those of the rows it shows
    (the copy the core changed meanwhile is above)."""
    from pathlib import PurePath

    from console.antivirus import service
    admin.set(av__central_quarantine=CENTRAL)
    failed = _many(home, 2, central=FAILED)
    sent = _many(home, 5, central={**CENTRAL, "state": "sent"})
    reads: list[str] = []
    read = service._read
    monkeypatch.setattr(service, "_read",
                        lambda path: reads.append(PurePath(path).parent.name) or read(path))
    for view in ("first", "second"):
        reads.clear()
        assert _listed(admin.get(QUARANTINE + "?central=failed").get_data(as_text=True)) == \
            failed[::-1]
        if view == "first":                     # each copy's state, then the page's rows
            assert sorted(reads) == sorted(failed + sent + failed)
    assert sorted(reads) == sorted(failed)      # the rows only: no state read again


def test_a_look_at_the_states_does_not_wait_on_another_reading_the_disk(home, monkeypatch):
    """review14 D4: the state cache's lock was held while a look called stat on every
    envelope and read the changed ones, so with a cold cache every filtered view of a
    console process waited on one thread's disk reads. Here one look is held inside its
    first read until another look has finished."""
    import threading

    from console.antivirus import service
    names = sorted(_many(home, 2, central=FAILED), reverse=True)
    folder = home.queue("quarantine/virus")
    states = service._CentralStates()
    slow_is_reading, other_is_done = threading.Event(), threading.Event()
    read = service._read

    def held_read(path):
        if threading.current_thread().name == "slow look" and not slow_is_reading.is_set():
            slow_is_reading.set()
            held["released"] = other_is_done.wait(10)
        return read(path)

    held: dict = {}
    monkeypatch.setattr(service, "_read", held_read)
    slow = threading.Thread(target=lambda: held.update(slow=states.of(folder, names)),
                            name="slow look")
    slow.start()
    assert slow_is_reading.wait(10)
    other = states.of(folder, names)            # before: waited until the slow look gave up
    other_is_done.set()
    slow.join()
    assert held["released"], "the other look waited on the slow one's reads"
    assert other == held["slow"] == dict.fromkeys(names, "failed")


def test_select_the_page_checks_every_row_of_that_page_and_no_other(admin, home):
    ids = _many(home, PAGE_SIZE + 3, central=FAILED)
    page = admin.get(QUARANTINE + "?central=failed").get_data(as_text=True)
    [select] = re.findall(r'<a href="([^"]+)" id="select-page">Select the (\d+) message\(s\) '
                          r'on this page</a>', page)
    assert select[1] == str(PAGE_SIZE) and 'checked' not in page
    [last] = re.findall(r'<a href="([^"]+)" id="last-page"', page)
    last_page = admin.get(html.unescape(last)).get_data(as_text=True)
    [select_last] = re.findall(r'<a href="([^"]+)" id="select-page"', last_page)
    selected = admin.get(html.unescape(select_last)).get_data(as_text=True)
    checked = re.findall(r'name="ids" value="([^"]+)"[^>]* checked>', selected)
    assert checked == ids[2::-1] and _listed(selected) == checked
    assert 'id="select-none"' in selected
    # the actions keep the filter and the page
    [action] = re.findall(r'<form method="post" action="(/antivirus/quarantine/delete[^"]*)" '
                          r'novalidate>', selected)
    assert html.unescape(action) == "/antivirus/quarantine/delete?central=failed&page=2"
    confirmation = admin.post(html.unescape(action), {"ids": checked, "delete": "1"})
    [action] = re.findall(r'<form method="post" action="(/antivirus/quarantine/delete[^"]*)" '
                          r'novalidate>', confirmation.get_data(as_text=True))
    response = admin.post(html.unescape(action), {"ids": checked, "confirm": "1"})
    assert response.headers["Location"].endswith("/antivirus/quarantine?central=failed&page=2")


DELETE_ALL = "/antivirus/quarantine/delete-all"
RESEND_ALL = "/antivirus/quarantine/central-resend-all"


def _every_page_button(page: str, button: str) -> tuple[str, str, dict]:
    """The list's "every page at once" button `button` (its id): (where it posts, its text,
    the fields it posts)."""
    [(action, form)] = re.findall(r'<form method="post" action="([^"]+)" '
                                  r'id="virus-quarantine-all" novalidate>(.*?)</form>', page, re.S)
    [(attributes, text)] = re.findall(rf'<button type="submit" ([^>]*)id="{button}">([^<]+)'
                                      rf'</button>', form)
    action = (re.findall(r'formaction="([^"]+)"', attributes) or [action])[0]
    return html.unescape(action), text, _hidden_fields(form)


def _hidden_fields(page: str) -> dict:
    return {name: html.unescape(value) for name, value in re.findall(
        r'<input id="[^"]+" name="([^"]+)" type="hidden" value="([^"]*)"', page)}


def _confirmation(page: str) -> str:
    [what] = re.findall(r'<p id="confirm-what">(.*?)</p>', page, re.S)
    return " ".join(html.unescape(what).split())


def test_delete_every_failed_copy_confirms_then_asks_in_bounded_commands(admin, home):
    failed = _many(home, IDS_PER_COMMAND + 1, central=FAILED)
    sent = _many(home, 2, central={**CENTRAL, "state": "sent"})
    page = admin.get(QUARANTINE + "?central=failed").get_data(as_text=True)
    url, text, fields = _every_page_button(page, "delete-all")
    assert (url, text, fields["central"]) == (
        DELETE_ALL, f"Delete all {len(failed)} message(s) whose sending to the central "
                    f"quarantine failed…", "failed")
    confirmation = admin.post(url, fields).get_data(as_text=True)
    assert _confirmation(confirmation).startswith(
        f"Delete all {len(failed)} message(s) in the virus quarantine whose sending to the "
        f"central quarantine failed, quarantined from ")
    assert f'value="Delete all {len(failed)} message(s)"' in confirmation
    assert admin.commands() == []                   # nothing asked before Yes
    fields = _hidden_fields(confirmation)
    assert fields["central"] == "failed" and fields["confirmed"].startswith(f"{len(failed)}:")
    response = admin.post(DELETE_ALL, {**fields, "confirm": "1"})
    assert response.headers["Location"].endswith("/antivirus/quarantine?central=failed")
    commands = admin.commands()
    assert [c["kind"] for c in commands] == ["virus_quarantine.delete"] * 2
    assert [len(c["args"]["ids"]) for c in commands] == [IDS_PER_COMMAND, 1]
    assert sorted(i for c in commands for i in c["args"]["ids"]) == failed  # not the sent
    assert len([e for e in admin.events(Action.OBJECT_MODIFIED)
                if e["data"].get("command") == "virus_quarantine.delete"]) == 2
    page = admin.get(QUARANTINE + "?central=failed").get_data(as_text=True)
    assert (f"The core deletes the {len(failed)} message(s) within a few seconds; they are no "
            f"longer listed.") in page
    assert _listed(page) == []
    assert _listed(admin.get(QUARANTINE).get_data(as_text=True)) == sent[::-1]


def _sorting_just_before(queue_id: str) -> str:
    """A queue id that sorts just before `queue_id`, as another core process's may when it
    is made in the same millisecond, or after the clock stepped back (shared/spool.py
    `new_queue_id`)."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = sum(alphabet.index(c) << 5 * i for i, c in enumerate(reversed(queue_id))) - 1
    return "".join(alphabet[value >> 5 * i & 31] for i in reversed(range(len(queue_id))))


@pytest.mark.parametrize("change", ["kept, its id before theirs", "kept, its id after theirs",
                                    "one deleted", "one sent"])
def test_a_confirmation_acts_on_exactly_the_copies_it_counted_or_is_shown_again(admin, home,
                                                                                change):
    """review14 B3: the confirmation sent back the newest queue id it counted and the core
    was asked for every failed copy up to it, taking queue ids for the order copies were
    kept in. They are only within one process and one clock: a copy kept after the
    confirmation, its id sorting before the confirmed ones, was deleted unseen. Now the
    confirmation counts the copies with a digest of their ids: when the filter selects
    others by Yes, nothing is asked and the confirmation is shown again."""
    failed = _many(home, 3, central=FAILED)
    confirmation = admin.post(DELETE_ALL, {**_hidden_fields(admin.get(
        QUARANTINE + "?central=failed").get_data(as_text=True)), "central": "failed"})
    fields = _hidden_fields(confirmation.get_data(as_text=True))
    now = list(failed)
    if change.startswith("kept"):
        later = (_sorting_just_before(failed[0]) if change.endswith("before theirs") else
                 new_queue_id())
        _quarantine(home, later, central=FAILED)
        now.append(later)
    elif change == "one deleted":               # a selected Delete meanwhile, in another tab
        admin.post("/antivirus/quarantine/delete", {"ids": [failed[1]], "confirm": "1"})
        now.remove(failed[1])
    else:                                       # the core sent it meanwhile
        spool = Spool(home.spool)
        envelope = spool.read_envelope("quarantine/virus", failed[1])
        envelope.meta["central"] = {**CENTRAL, "state": "sent"}
        spool.write_envelope("quarantine/virus", envelope)
        now.remove(failed[1])
    asked_before = admin.commands()
    response = admin.post(DELETE_ALL, {**fields, "confirm": "1"})
    named = [i for c in admin.commands()[len(asked_before):] for i in c["args"]["ids"]]
    assert not set(named) - set(failed), "a copy the confirmation did not count was named"
    assert named == []
    assert response.status_code == 200            # the confirmation again, as things are now
    page = response.get_data(as_text=True)
    assert ("Nothing was deleted: the messages changed since the confirmation was shown (one "
            "was kept, deleted or changed state). Here they are as they are now.") in \
        html.unescape(page)
    assert _confirmation(page).startswith(f"Delete all {len(now)} message(s) in the virus "
                                          f"quarantine whose sending to the central "
                                          f"quarantine failed")
    # confirmed as they are now, those are asked for
    response = admin.post(DELETE_ALL, {**_hidden_fields(page), "confirm": "1"})
    assert response.status_code == 302
    [command] = admin.commands()[len(asked_before):]
    assert command["args"]["ids"] == sorted(now)


def test_send_every_failed_copy_again_confirms_then_asks_the_core(admin, home):
    admin.set(av__central_quarantine={**CENTRAL, "mailbox": "vault@example.test"})
    failed = _many(home, PAGE_SIZE + 2, central=FAILED)
    _many(home, 1, central={**CENTRAL, "state": "pending"})
    page = admin.get(QUARANTINE + "?central=failed").get_data(as_text=True)
    url, text, fields = _every_page_button(page, "central-resend-all")
    assert (url, text) == (RESEND_ALL, f"Send all {len(failed)} of them to the central "
                                       f"quarantine again…")
    assert 'id="central-resend-all"' not in admin.get(QUARANTINE).get_data(as_text=True)
    confirmation = admin.post(url, fields).get_data(as_text=True)
    assert ("to the central quarantine again? They go to the central quarantine as it is set "
            "now: vault@example.test at cq.example.test port 25.") in " ".join(
                confirmation.split())
    response = admin.post(RESEND_ALL, {**_hidden_fields(confirmation), "confirm": "1"})
    assert response.headers["Location"].endswith("/antivirus/quarantine?central=failed")
    [command] = admin.commands()
    assert command["kind"] == "virus_quarantine.central_resend"
    assert command["args"] == {"ids": failed}                      # oldest first
    page = admin.get(QUARANTINE + "?central=failed").get_data(as_text=True)
    assert f"The core sends the {len(failed)} message(s) to the central quarantine again" in page
    assert _listed(page) == []                      # pending until the core has done it
    assert set(failed) <= set(_listed(admin.get(QUARANTINE + "?central=pending&page=2")
                                      .get_data(as_text=True)) +
                              _listed(admin.get(QUARANTINE + "?central=pending")
                                      .get_data(as_text=True)))
    # nothing left to send: said, and nothing asked
    response = admin.post(url, fields, follow_redirects=True)
    assert ("Nothing was sent again: there is no message whose sending to the central "
            "quarantine failed") in html.unescape(response.get_data(as_text=True))
    assert len(admin.commands()) == 1


def test_send_every_failed_copy_again_is_refused_while_the_central_quarantine_is_off(admin,
                                                                                       home):
    failed = _many(home, 2, central=FAILED)
    for data in ({}, {"confirmed": f"{len(failed)}:x", "confirm": "1"}):
        response = admin.post(RESEND_ALL, {"central": "failed", **data})
        assert response.headers["Location"].endswith("/antivirus/quarantine?central=failed")
        page = admin.get(QUARANTINE + "?central=failed").get_data(as_text=True)
        assert "Nothing was sent again: the central quarantine is off" in page
    assert admin.commands() == []


@pytest.mark.parametrize("confirmed", ["", "2:x", "counted for another filter"])
def test_a_confirmation_naming_other_copies_is_shown_again_and_asks_nothing(admin, home,
                                                                            confirmed):
    _many(home, 2, central=FAILED)
    if confirmed == "counted for another filter":
        _many(home, 1, central={**CENTRAL, "state": "sent"})
        confirmed = _hidden_fields(admin.post(DELETE_ALL, {"central": ""}).get_data(
            as_text=True))["confirmed"]
    response = admin.post(DELETE_ALL, {"central": "failed", "confirmed": confirmed,
                                       "confirm": "1"})
    assert response.status_code == 200
    page = html.unescape(response.get_data(as_text=True))
    assert "Nothing was deleted: the messages changed since the confirmation was shown" in page
    assert _confirmation(page).startswith("Delete all 2 message(s)")
    assert admin.commands() == []


def test_a_confirmation_when_no_copy_is_left_says_so_and_asks_nothing(admin, home):
    [failed] = _many(home, 1, central=FAILED)
    fields = _hidden_fields(admin.post(DELETE_ALL, {"central": "failed"}).get_data(
        as_text=True))
    admin.post("/antivirus/quarantine/delete", {"ids": [failed], "confirm": "1"})  # another tab
    response = admin.post(DELETE_ALL, {**fields, "confirm": "1"}, follow_redirects=True)
    assert "Nothing was deleted: no copy matches any more" in html.unescape(
        response.get_data(as_text=True))
    assert [c["args"]["ids"] for c in admin.commands()] == [[failed]]   # the selected one
