"""Configuration tabs: forms from the schema, saves, validation messages, events, ports,
routing list, hold-queue commands."""

from __future__ import annotations

import json
import re
import socket

import pytest

from console.configuration.forms import ACCOUNT_KEYS, SETTINGS_FORMS, page_keys
from console.schema_forms import supports
from shared import db
from shared.events import Action
from shared.settings import SCHEMA
from shared.status import STALE_AFTER_SECONDS, new_snapshot, write_snapshot

from .conftest import ADMIN_PASSWORD, REPORT_PASSWORD, Console

CONFIG_PAGES = ("accounts", "setup", "scan_policy", "routing", "alerts", "notifications",
                "logging", "diagnostics")


def test_every_configuration_key_has_a_form_field():
    """Forms come from the schema: a key added to a Configuration page shows up by itself."""
    covered = set(ACCOUNT_KEYS) | {"admin.password", "admin.report_only.password",
                                   "routing.local", "routing.default"}
    for form in SETTINGS_FORMS.values():
        covered |= {sf.key for sf in form.setting_fields}
    expected = {key for key, s in SCHEMA.items() if s.page in CONFIG_PAGES}
    assert expected == covered


def test_generic_pages_need_no_hand_written_fields():
    for page in SETTINGS_FORMS:
        assert all(supports(key) for key in page_keys(page))


def _form_fields(admin: Console, url: str) -> dict:
    """The page's form as a browser would submit it unchanged (text, selects, checkboxes)."""
    import re
    html = admin.get(url).get_data(as_text=True)
    form = html.split('id="settings-form"', 1)[1].split("</form>", 1)[0]
    data = {}
    for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*type="text" value="([^"]*)"', form):
        data[name] = value
    for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*type="text"(?: value="([^"]*)")?', form):
        data.setdefault(name, value)
    for tag in re.findall(r'<input[^>]*type="checkbox"[^>]*>', form):
        if "checked" in tag:
            data[re.search(r'name="([^"]+)"', tag).group(1)] = "y"
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        selected = re.search(r'<option selected value="([^"]*)"', body) or \
            re.search(r'<option value="([^"]*)" selected', body)
        data[name] = selected.group(1) if selected else ""
    for name, body in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S):
        import html as h
        data[name] = h.unescape(body.lstrip("\r\n"))
    return data


@pytest.mark.parametrize("url", ["/configuration/setup", "/configuration/scan-policy",
                                 "/configuration/alerts", "/configuration/notifications",
                                 "/configuration/logging", "/configuration/diagnostics"])
def test_submitting_a_tab_unchanged_changes_nothing(admin, url):
    before = admin.settings()
    response = admin.post(url, _form_fields(admin, url))
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    assert admin.settings() == before
    assert admin.events(Action.OBJECT_MODIFIED) == []


def test_setup_change_is_persisted_with_object_modified_event(admin):
    data = _form_fields(admin, "/configuration/setup")
    data["smtp__max_incoming"] = "20"
    data["delivery__reject_incoming"] = "y"
    response = admin.post("/configuration/setup", data)
    assert response.status_code == 302
    values = admin.settings()
    assert values["smtp.max_incoming"] == 20 and values["delivery.reject_incoming"] is True
    event = admin.events(Action.OBJECT_MODIFIED)[-1]
    assert event["client_ip"] == "127.0.0.1"
    assert event["data"] == {"user": "admin", "page": "setup", "changes": {
        "smtp.max_incoming": [15, 20], "delivery.reject_incoming": [False, True]}}
    assert b"Changes saved." in admin.get("/configuration/setup").data


BAD_VALUES = [
    # (url, form field, bad value, the schema's message)
    ("/configuration/setup", "smtp__port", "70000", "must be between 1 and 65535"),
    ("/configuration/setup", "smtp__max_incoming", "many", "must be a whole number"),
    ("/configuration/setup", "http__port", "25", "already used by “SMTP port number”"),
    ("/configuration/setup", "smtp__notify_from", "bad <name", "must be a name (Security Office)"),
    ("/configuration/setup", "dns__resolvers", "1.2.3.4\nnot-an-ip", "line 2: must be IP or IP:port"),
    ("/configuration/setup", "timezone", "Mars/Olympus", "must be an IANA time zone name"),
    ("/configuration/setup", "delivery__retry_max_seconds", "10", "must not be lower than “First retry after a temporary failure”"),
    ("/configuration/scan-policy", "scan__include", "exe", "line 1: must be a file extension written .ext"),
    ("/configuration/scan-policy", "scan__unprocessable", "shred", "must be one of deliver, drop, hold"),
    ("/configuration/notifications", "notify__admin__subject", "x" * 300, "must be at most 255 characters"),
    ("/configuration/logging", "logging__retention_days", "5", "must be between 7 and 3650 or 0"),
    ("/configuration/logging", "forwarding__host", "bad host!", "must be a host name or an IP address"),
    ("/configuration/diagnostics", "diagnostics__queue_file_save", "sometimes", "must be one of off, on_error, all"),
]


@pytest.mark.parametrize("url,field,value,message", BAD_VALUES)
def test_bad_value_shows_schema_message_next_to_field_and_changes_nothing(admin, url, field,
                                                                          value, message):
    before = admin.settings()
    data = _form_fields(admin, url)
    data[field] = value
    response = admin.post(url, data)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    field_id = field
    error_span = f'<span class="error" id="{field_id}-error">'
    assert error_span in html, html[:200]
    assert message in html.split(error_span, 1)[1].split("</span>", 1)[0]
    assert admin.settings() == before
    assert admin.events(Action.OBJECT_MODIFIED) == []


def test_alerts_toggle_is_saved_and_warns_without_admin_email(admin):
    html = admin.get("/configuration/alerts").get_data(as_text=True)
    assert "alerts and administrator notifications cannot be delivered" in html
    data = _form_fields(admin, "/configuration/alerts")
    data["alerts__config_change"] = "y"
    assert admin.post("/configuration/alerts", data).status_code == 302
    assert admin.settings()["alerts.config_change"] is True


def test_siem_transport_and_format_options_are_written_as_their_standards_write_them(admin):
    # guide36 finding 7: "Tcp / Tls / Udp" and "Rfc5424 / Cef / Json"
    html = admin.get("/configuration/logging").get_data(as_text=True)
    shown = {name: re.findall(r"<option[^>]*>([^<]*)</option>", body) for name, body in
             re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S)}
    assert shown["forwarding__transport"] == ["TCP", "TLS", "UDP"]
    assert shown["forwarding__format"] == ["RFC 5424", "CEF", "JSON"]


def test_the_logging_tab_says_siem_forwarding_is_not_built(admin):
    # docs finding B1: the tab offered SIEM forwarding with no word that nothing is ever sent
    html = admin.get("/configuration/logging").get_data(as_text=True)
    notices = re.findall(r'<p class="notice" id="not-built">([^<]*)</p>', html)
    assert len(notices) == 1 and notices[0].startswith(
        "SIEM forwarding is not built yet: its settings are stored, but no event is sent"), notices
    labels = re.findall(r'<label for="forwarding__host">([^<]*)</label>', html)
    assert labels == ["SIEM receiver host"]          # said once, above the form, not per field
    # a tab whose features are all built carries no such notice
    assert 'id="not-built"' not in admin.get("/configuration/setup").get_data(as_text=True)


def test_the_alerts_tab_names_the_scan_error_alert_by_its_event_and_its_subject(admin):
    # docs finding C7: the docs said "Scan Error", the tab only "Decomposition error"
    html = admin.get("/configuration/alerts").get_data(as_text=True)
    labels = re.findall(r'<label><input[^>]*name="alerts__scan_error"[^>]*> ([^<]*)</label>',
                        html)
    assert labels == ["Scan error: send the alert “Decomposition error”"]


def test_the_time_zone_list_offers_only_what_the_setting_takes(admin):
    # guide36 finding 7: `localtime` was offered (and refused once fad96ab checked it)
    html = admin.get("/configuration/setup").get_data(as_text=True)
    [body] = re.findall(r'<select[^>]*name="timezone"[^>]*>(.*?)</select>', html, re.S)
    offered = re.findall(r'<option[^>]*value="([^"]*)"', body)
    assert "Europe/Berlin" in offered and "US/Eastern" in offered
    assert "localtime" not in offered and "Factory" not in offered


TEMP_DIR_NOTE = "The temporary files directory takes effect when Mailmoat restarts"


def _core_started(admin, clock, read_at_start: str = "", in_use: str | None = None) -> None:
    """The status snapshot of a core that started now and is running, with the temporary
    directory it read and uses (core/app.py); `in_use` given: it fell back to it."""
    snapshot = new_snapshot(started_at=clock.now())
    snapshot["scan_temp_dir"] = {"read_at_start": read_at_start,
                                 "in_use": in_use or read_at_start or str(admin.home.tmp),
                                 "fell_back": in_use is not None}
    conn = db.connect(admin.home.db)
    try:
        write_snapshot(conn, snapshot, now=clock.now())
    finally:
        conn.close()


def _save_temp_dir(admin, clock, value: str) -> str:
    clock.advance(1)
    data = _form_fields(admin, "/configuration/setup")
    data["scan__temp_dir"] = value
    assert admin.post("/configuration/setup", data).status_code == 302
    return admin.get("/configuration/setup").get_data(as_text=True)


def test_the_temporary_directory_note_shows_only_until_the_core_restarts(admin, clock, tmp_path):
    # guide36 finding 7: shown on every visit whenever scan.temp_dir was set, long after
    # the restart that put it in force
    _core_started(admin, clock)
    assert TEMP_DIR_NOTE not in admin.get("/configuration/setup").get_data(as_text=True)
    scratch = str(tmp_path / "scratch")
    html = _save_temp_dir(admin, clock, scratch)
    assert f"{TEMP_DIR_NOTE}; until then scanning uses {admin.home.tmp}." in html
    clock.advance(1)
    _core_started(admin, clock, scratch)                     # the restart
    assert TEMP_DIR_NOTE not in admin.get("/configuration/setup").get_data(as_text=True)
    html = _save_temp_dir(admin, clock, "")
    assert f"{TEMP_DIR_NOTE}; until then scanning uses {scratch}." in html
    # set back to what the core uses: nothing waits for a restart
    assert TEMP_DIR_NOTE not in _save_temp_dir(admin, clock, scratch)


def test_a_temporary_directory_the_core_could_not_use_is_said(admin, clock, tmp_path):
    # guide36 finding 7: the core fell back to tmp/ in the data home (a scan_error event)
    # while the page went on showing the unusable path, without a word
    unusable = str(tmp_path / "a-file")
    _save_temp_dir(admin, clock, unusable)
    _core_started(admin, clock, unusable, in_use=str(admin.home.tmp))
    html = admin.get("/configuration/setup").get_data(as_text=True)
    assert (f"The temporary files directory {unusable} could not be used when Mailmoat "
            f"started (a scan_error event says why); scanning uses {admin.home.tmp}.") in html


def test_a_temporary_directory_written_with_a_trailing_slash_is_no_fall_back(admin, clock,
                                                                            tmp_path):
    # review 13 B5: the page compared the stored text with the path the core reported
    # (without the slash) and said "could not be used" of a directory in use
    stored = f"{tmp_path / 'scratch'}/"
    _save_temp_dir(admin, clock, stored)
    snapshot = new_snapshot(started_at=clock.now())
    snapshot["scan_temp_dir"] = {"read_at_start": stored, "in_use": str(tmp_path / "scratch"),
                                 "fell_back": False}
    conn = db.connect(admin.home.db)
    try:
        write_snapshot(conn, snapshot, now=clock.now())
    finally:
        conn.close()
    html = admin.get("/configuration/setup").get_data(as_text=True)
    assert "could not be used" not in html and TEMP_DIR_NOTE not in html


def test_the_temporary_directory_note_is_not_shown_while_the_core_is_stopped(admin, clock,
                                                                              tmp_path):
    # it reads the directory when it starts; "restarts" and "until then" would mislead
    _core_started(admin, clock)
    clock.advance(STALE_AFTER_SECONDS + 1)
    assert TEMP_DIR_NOTE not in _save_temp_dir(admin, clock, str(tmp_path / "scratch"))


# --- ports ---------------------------------------------------------------------------------

def test_port_used_by_another_program_is_refused_and_old_value_kept(admin):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        data = _form_fields(admin, "/configuration/setup")
        data["http__port"] = str(port)
        response = admin.post("/configuration/setup", data)
    assert response.status_code == 200
    assert f"port {port} is in use by another program; the old value is kept" in \
        response.get_data(as_text=True)
    assert admin.settings()["http.port"] == 8003


def test_free_port_is_accepted(admin):
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    data = _form_fields(admin, "/configuration/setup")
    data["https__port"] = str(port)
    assert admin.post("/configuration/setup", data).status_code == 302
    assert admin.settings()["https.port"] == port


def test_port_held_by_mailmoats_own_listener_is_not_in_use(admin):
    with socket.socket() as ours:
        ours.bind(("0.0.0.0", 0))
        ours.listen()
        port = ours.getsockname()[1]
        admin.app.extensions["mailmoat"].bound_ports["http"] = port
        data = _form_fields(admin, "/configuration/setup")
        data["http__port"] = str(port)
        assert admin.post("/configuration/setup", data).status_code == 302
    assert admin.settings()["http.port"] == port


ONE_AT_A_TIME = "change one port number at a time"


def test_swapping_the_http_and_https_ports_in_one_save_is_refused(admin):
    # guide36 finding 1: "Changes saved.", but neither listener could bind a port the other
    # still held, so nothing moved until a restart swapped them (guide §3 "Configuring SMTP
    # options": refused as in use, "change one port number at a time")
    data = _form_fields(admin, "/configuration/setup")
    data["http__port"], data["https__port"] = "8043", "8003"
    response = admin.post("/configuration/setup", data)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Changes saved." not in html
    # beside the field, the other keys by their labels (tester25a B5)
    assert ("port 8043 is in use: Mailmoat&#39;s “HTTPS port number” listener holds it now, and "
            f"this change moves “HTTPS port number” too; {ONE_AT_A_TIME}") in html
    assert ("port 8003 is in use: Mailmoat&#39;s “HTTP port number” listener holds it now, and "
            f"this change moves “HTTP port number” too; {ONE_AT_A_TIME}") in html
    assert (admin.settings()["http.port"], admin.settings()["https.port"]) == (8003, 8043)
    # what the message says works
    spare = _free_port()
    for http, https in ((8003, spare), (8043, spare), (8043, 8003)):
        data = _form_fields(admin, "/configuration/setup")
        data["http__port"], data["https__port"] = str(http), str(https)
        assert admin.post("/configuration/setup", data).status_code == 302
    assert (admin.settings()["http.port"], admin.settings()["https.port"]) == (8043, 8003)


def test_taking_the_smtp_port_while_moving_smtp_is_refused(admin):
    free = _free_port()
    data = _form_fields(admin, "/configuration/setup")
    data["smtp__port"], data["http__port"] = str(free), "25"
    html = admin.post("/configuration/setup", data).get_data(as_text=True)
    assert "port 25 is in use: Mailmoat&#39;s “SMTP port number” listener holds it now" in html
    assert (admin.settings()["smtp.port"], admin.settings()["http.port"]) == (25, 8003)


def test_a_port_a_listener_still_holds_while_it_moves_is_refused(admin):
    # the HTTP listener is still on a port it has not left yet (its setting says 8003)
    held = _free_port()
    admin.app.extensions["mailmoat"].bound_ports["http"] = held
    data = _form_fields(admin, "/configuration/setup")
    data["https__port"] = str(held)
    html = admin.post("/configuration/setup", data).get_data(as_text=True)
    # review 13: it said "and this change moves http.port too", which it did not
    assert (f"port {held} is in use by Mailmoat&#39;s “HTTP port number” listener, which is still "
            "on it (not where “HTTP port number” says); the old value is kept") in html
    assert admin.settings()["https.port"] == 8043


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        return probe.getsockname()[1]


# --- accounts ------------------------------------------------------------------------------

def _password(admin, account, new, confirm=None):
    return admin.post(f"/configuration/accounts/password/{account}", {
        f"{account}-new_password": new, f"{account}-confirm": new if confirm is None else confirm})


def test_admin_password_change_is_hashed_and_usable(admin, app, home):
    assert _password(admin, "admin", "New-Secret9").status_code == 302
    event = admin.events(Action.OBJECT_MODIFIED)[-1]
    assert event["data"]["changes"] == {"admin.password": ["***", "***"]}
    assert "New-Secret9" not in json.dumps(admin.events())
    fresh = Console(app, home)
    assert fresh.logon("admin", ADMIN_PASSWORD).status_code == 200
    assert fresh.logon("admin", "New-Secret9").status_code == 302


@pytest.mark.parametrize("account,new,confirm,message", [
    ("admin", "abc", "abd", "the two passwords differ"),
    ("admin", "x" * 33, None, "must be at most 32 characters"),
    ("admin", "scrypt:" + "x" * 33, None, "or a password hash exactly as"),   # B/C11
    ("report", ADMIN_PASSWORD, None, "must differ from admin.password"),
])
def test_password_form_messages(admin, account, new, confirm, message):
    before = admin.settings()
    response = _password(admin, account, new, confirm)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert admin.settings() == before


def test_report_only_must_have_a_password_before_it_is_enabled(admin):
    data = _form_fields(admin, "/configuration/accounts")
    data["settings-admin__report_only__enabled"] = "y"
    response = admin.post("/configuration/accounts", data)
    assert "set admin.report_only.password first" in response.get_data(as_text=True)
    assert admin.settings()["admin.report_only.enabled"] is False
    assert _password(admin, "report", REPORT_PASSWORD).status_code == 302
    assert admin.post("/configuration/accounts", data).status_code == 302
    assert admin.settings()["admin.report_only.enabled"] is True


@pytest.mark.parametrize("field,value,message", [
    ("settings-admin__timeout_minutes", "0", "must be between 1 and 1440"),
    ("settings-admin__emails", "ops@example.com\nnot-an-address", "line 2: must be a full email address"),
])
def test_accounts_settings_messages(admin, field, value, message):
    data = _form_fields(admin, "/configuration/accounts")
    data[field] = value
    response = admin.post("/configuration/accounts", data)
    html = response.get_data(as_text=True)
    assert message in html.split(f'id="{field}-error"', 1)[1].split("</span>", 1)[0]


def test_accounts_settings_saved(admin):
    data = _form_fields(admin, "/configuration/accounts")
    data["settings-admin__timeout_minutes"] = "30"
    data["settings-admin__emails"] = "ops@example.com\r\nsec@example.com\r\n"
    assert admin.post("/configuration/accounts", data).status_code == 302
    values = admin.settings()
    assert values["admin.timeout_minutes"] == 30
    assert values["admin.emails"] == ["ops@example.com", "sec@example.com"]


# --- routing -------------------------------------------------------------------------------

def _add_route(admin, match, relay="", port="25"):
    return admin.post("/configuration/routing/local",
                      {"add-match": match, "add-relay": relay, "add-port": port})


def test_add_edit_delete_local_routing_entry(admin):
    assert _add_route(admin, "example.com", "mail.example.com", "2525").status_code == 302
    assert _add_route(admin, "*.example.org").status_code == 302
    assert admin.settings()["routing.local"] == [
        {"match": "example.com", "relay": "mail.example.com", "port": 2525},
        {"match": "*.example.org", "port": 25}]
    html = admin.get("/configuration/routing").get_data(as_text=True)
    assert "mail.example.com" in html and "*.example.org" in html

    page = admin.get("/configuration/routing/local/0")
    assert b'value="mail.example.com"' in page.data
    response = admin.post("/configuration/routing/local/0", {
        "match": "example.com", "relay": "10.0.0.5", "port": "25", "original": "example.com"})
    assert response.status_code == 302
    assert admin.settings()["routing.local"][0] == {"match": "example.com", "relay": "10.0.0.5",
                                                    "port": 25}
    response = admin.post("/configuration/routing/local/1/delete", {   # as its confirmation
        "original": "*.example.org", "confirm": "1",
        "shown": json.dumps({"match": "*.example.org", "port": 25})})
    assert response.status_code == 302
    assert [e["match"] for e in admin.settings()["routing.local"]] == ["example.com"]
    assert len(admin.events(Action.OBJECT_MODIFIED)) == 4


@pytest.mark.parametrize("match,relay,port,field,message", [
    ("bad domain!", "", "25", "add-match", "must be a domain, with * and ? wildcards allowed"),
    ("example.com", "bad host!", "25", "add-relay", "must be a host name or an IP address"),
    ("example.com", "", "99999", "add-port", "must be between 1 and 65535"),
    ("", "", "25", "add-match", "must not be empty"),
])
def test_routing_entry_messages(admin, match, relay, port, field, message):
    response = _add_route(admin, match, relay, port)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert message in html.split(f'id="{field}-error"', 1)[1].split("</span>", 1)[0]
    assert admin.settings()["routing.local"] == []


def test_duplicate_routing_entry_is_refused(admin):
    _add_route(admin, "example.com")
    response = _add_route(admin, "EXAMPLE.com")
    assert "already in the local routing list" in response.get_data(as_text=True)


def test_delete_of_a_changed_entry_is_refused(admin):
    _add_route(admin, "example.com")
    admin.post("/configuration/routing/local/0/delete", {"original": "other.com"})
    assert len(admin.settings()["routing.local"]) == 1


def test_default_route_set_and_cleared(admin):
    response = admin.post("/configuration/routing/default", {
        "default-routing__default___host": "smtp.example.com",
        "default-routing__default___port": "587"})
    assert response.status_code == 302
    assert admin.settings()["routing.default"] == {"host": "smtp.example.com", "port": 587}
    admin.post("/configuration/routing/default", {"default-routing__default___host": "",
                                                  "default-routing__default___port": ""})
    assert admin.settings()["routing.default"] is None


def test_default_route_bad_port_message(admin):
    response = admin.post("/configuration/routing/default", {
        "default-routing__default___host": "smtp.example.com",
        "default-routing__default___port": "0"})
    assert "port must be between 1 and 65535" in response.get_data(as_text=True)
    assert admin.settings()["routing.default"] is None


# --- hold queue ----------------------------------------------------------------------------

def _hold(home, queue_id, sender="a@example.com", reason="crashed the processor 3 times"):
    folder = home.queue("hold") / queue_id
    folder.mkdir(parents=True)
    (folder / "envelope.json").write_text(json.dumps({
        "format": 1, "queue_id": queue_id, "sender": sender,
        "recipients": [{"address": "b@example.net", "status": "pending"}],
        "received_at": 1_800_000_000.0, "size": 1234, "hold_reason": reason}))
    (folder / "message").write_bytes(b"Subject: x\r\n\r\nbody\r\n")


def test_hold_queue_lists_messages_read_only(admin, home):
    _hold(home, "q1aaaa")
    _hold(home, "q2bbbb")
    (home.queue("hold") / "q3broken").mkdir()
    html = admin.get("/configuration/hold").get_data(as_text=True)
    assert "3 message(s) in the hold queue" in html
    assert "q1aaaa" in html and "b@example.net" in html and "crashed the processor" in html
    assert "1 message(s) could not be read" in html


def _confirmed_ids(page: str) -> str:
    [ids] = re.findall(r'name="ids" type="hidden" value="([^"]*)"', page)
    return ids


def test_hold_drop_all_asks_then_queues_a_command_naming_what_it_counted(admin, home):
    _hold(home, "q1aaaa")
    _hold(home, "q2bbbb")
    confirm = admin.post("/configuration/hold/confirm", {"drop": "Drop Messages"})
    assert confirm.status_code == 200
    assert b"Drop all 2 message(s) in the hold queue?" in confirm.data
    assert admin.commands() == []
    ids = _confirmed_ids(confirm.get_data(as_text=True))
    assert ids == "q1aaaa,q2bbbb"
    _hold(home, "q3late")           # held after the question was asked (tester28c B1)
    done = admin.post("/configuration/hold/action", {"action": "drop", "ids": ids,
                                                     "scope": "all"})
    assert done.status_code == 302
    [command] = admin.commands()
    assert (command["kind"], command["args"], command["requested_by"], command["state"]) == \
        ("hold.drop", {"ids": ["q1aaaa", "q2bbbb"]}, "admin", "pending")
    assert (home.queue("hold") / "q1aaaa").exists()  # the console never touches the spool
    assert admin.events(Action.OBJECT_MODIFIED)[-1]["data"]["command"] == "hold.drop"


def test_an_action_naming_no_message_is_refused_not_taken_for_all(admin, home):
    """A confirmation from before the page named its messages posted ids="", which the core
    read as every message in hold when it got to it (tester28c B1)."""
    _hold(home, "q1aaaa")
    response = admin.post("/configuration/hold/action", {"action": "drop", "ids": ""})
    assert response.status_code == 302          # back to the hold queue, which says why
    assert "Nothing was done: the confirmation named no message: open the hold queue and " \
        "choose again" in admin.get("/configuration/hold").get_data(as_text=True)
    assert admin.commands() == []


def test_the_hold_page_says_what_became_of_the_last_request(admin, home):
    """tester28c C1: the page said "the hold queue shows the result" whatever happened."""
    _hold(home, "q1aaaa")
    done = admin.post("/configuration/hold/action", {"action": "drop", "ids": "q1aaaa"})
    assert done.status_code == 302
    page = admin.get("/configuration/hold").get_data(as_text=True)
    # no core runs in these tests: the request waits, and both the notice and the page say so
    assert "The core is not running: the request waits" in page
    assert re.search(r'id="hold-last-request">Last request: drop of 1 message\(s\), by '
                     r'.*admin.*<strong>waiting</strong>: the core is not running', page, re.S)
    conn = db.connect(home.db)
    try:
        with db.write_transaction(conn):
            conn.execute("UPDATE commands SET state = 'failed', "
                         "result = 'not in the hold queue: q1aaaa'")
    finally:
        conn.close()
    page = admin.get("/configuration/hold").get_data(as_text=True)
    assert re.search(r"<strong>not done</strong> — .*not in the hold queue: q1aaaa", page)


def test_hold_reprocess_selected(admin, home):
    _hold(home, "q1aaaa")
    _hold(home, "q2bbbb")
    confirm = admin.post("/configuration/hold/confirm", {"reprocess": "x", "ids": ["q2bbbb"]})
    assert b"the 1 selected message(s)" in confirm.data
    admin.post("/configuration/hold/action", {"action": "reprocess", "ids": "q2bbbb"})
    assert admin.commands()[-1]["args"] == {"ids": ["q2bbbb"]}


def test_hold_forward_needs_one_valid_address(admin, home):
    _hold(home, "q1aaaa")
    response = admin.post("/configuration/hold/action", {
        "action": "forward", "ids": "q1aaaa", "address": "not an address", "subject": "Held"})
    assert response.status_code == 200
    assert "must be a full email address" in response.get_data(as_text=True)
    assert admin.commands() == []
    admin.post("/configuration/hold/action", {
        "action": "forward", "ids": "q1aaaa", "address": "sec@example.com",
        "subject": "Held mail"})
    assert admin.commands()[-1]["args"] == {"ids": ["q1aaaa"], "address": "sec@example.com",
                                            "subject": "Held mail"}
    # a blank subject keeps the message's own, as `queue forward` without --subject does
    admin.post("/configuration/hold/action", {
        "action": "forward", "ids": "q1aaaa", "address": "sec@example.com", "subject": "  "})
    assert admin.commands()[-1]["args"] == {"ids": ["q1aaaa"], "address": "sec@example.com",
                                            "subject": None}
    # header text, as the settings' forward subjects (review25b R1)
    before = admin.commands()
    response = admin.post("/configuration/hold/action", {
        "action": "forward", "ids": "q1aaaa", "address": "sec@example.com",
        "subject": "a\x07b"})
    assert response.status_code == 200
    assert "must not contain control or text-direction characters (U+0007, character 2)" \
        in response.get_data(as_text=True)
    assert admin.commands() == before


def test_hold_action_refuses_bad_ids(admin):
    response = admin.post("/configuration/hold/action", {"action": "drop", "ids": "../etc"})
    assert response.status_code == 302          # back to the hold queue, which says why
    assert response.headers["Location"].endswith("/configuration/hold")
    assert "Nothing was done: &#39;../etc&#39; is not a queue id" in \
        admin.get("/configuration/hold").get_data(as_text=True)
    assert admin.commands() == []


# --- list errors name the lines typed --------------------------------------------------------

def test_list_error_counts_the_lines_typed_blank_ones_too(admin):
    data = _form_fields(admin, "/configuration/setup")
    data["dns__resolvers"] = "\r\n1.2.3.4\r\n\r\nnot-an-ip\r\nnor-this"
    response = admin.post("/configuration/setup", data)
    page = response.get_data(as_text=True)
    assert "lines 4 and 5: must be IP or IP:port" in page.split(
        'id="dns__resolvers-error">', 1)[1].split("</span>", 1)[0]
    assert admin.settings()["dns.resolvers"] == []


# --- numbers in ASCII digits only -----------------------------------------------------------

WHOLE_NUMBER_RULE = "must be a whole number written with the digits 0-9"


@pytest.mark.parametrize("typed", ["２０", "٢٠", "2٠"])
def test_number_field_refuses_digits_other_than_ascii(admin, typed):
    """int() read "２０" (fullwidth) and "٢٠" (Arabic-Indic) as 20, and the console saved it."""
    data = _form_fields(admin, "/configuration/setup")
    data["smtp__max_incoming"] = typed
    response = admin.post("/configuration/setup", data)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert WHOLE_NUMBER_RULE in page.split('id="smtp__max_incoming-error">', 1)[1].split(
        "</span>", 1)[0]
    assert admin.settings()["smtp.max_incoming"] == 15


@pytest.mark.parametrize("typed", ["٢٥", "２５", "²"])
def test_routing_ports_refuse_digits_other_than_ascii(admin, typed):
    """A local route's port "٢٥" was saved as 25; "²" (isdigit, but not int()) was a 500."""
    response = _add_route(admin, "example.com", "", typed)
    assert response.status_code == 200
    assert WHOLE_NUMBER_RULE in response.get_data(as_text=True).split(
        'id="add-port-error"', 1)[1].split("</span>", 1)[0]
    assert admin.settings()["routing.local"] == []
    response = admin.post("/configuration/routing/default", {
        "default-routing__default___host": "smtp.example.com",
        "default-routing__default___port": typed})
    assert f"port {WHOLE_NUMBER_RULE}" in response.get_data(as_text=True)
    assert admin.settings()["routing.default"] is None


# --- values the settings tester found (tester "settings") ------------------------------------

def test_a_lone_surrogate_stored_by_an_older_release_does_not_break_the_page(admin, home):
    """Finding 1: with "\\ud800" in subject.forward_subject or disclaimer.text, the Setup and
    Content pages answered 500 (UTF-8 cannot hold it), so it could not be fixed there."""
    conn = db.connect(home.db)
    try:
        with conn:
            for key in ("disclaimer.text", "subject.forward_subject"):
                conn.execute("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, 0) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                             (key, json.dumps("Cut \ud800")))
    finally:
        conn.close()
    for url in ("/configuration/setup", "/filtering/content"):
        response = admin.get(url)
        assert response.status_code == 200
        assert "Cut \ufffd" in response.get_data(as_text=True)


def test_a_local_route_matching_every_domain_is_refused_on_the_page(admin):
    """Finding 4: `*` made every destination local, and the gateway an open relay."""
    response = _add_route(admin, "*")
    assert response.status_code == 200
    assert ("&#39;*&#39; would make mail to every domain local, which turns anti-relay off"
            in response.get_data(as_text=True))
    assert admin.settings()["routing.local"] == []


def test_a_confirmation_shown_again_says_what_it_names_against_the_hold_queue_now(admin, home):
    """review28d R2: shown again after a bad address, it said "all 2 message(s)" while one
    of them had left hold and another, not named, had come."""
    import shutil
    _hold(home, "q1aaaa")
    _hold(home, "q2bbbb")
    ids = _confirmed_ids(admin.post("/configuration/hold/confirm",
                                    {"forward": "Forward Messages"}).get_data(as_text=True))
    shutil.rmtree(home.queue("hold") / "q1aaaa")
    _hold(home, "q3late")
    page = admin.post("/configuration/hold/action", {
        "action": "forward", "ids": ids, "scope": "all", "address": "not an address",
        "subject": ""}).get_data(as_text=True)
    assert "Forward copies of the 2 message(s) that were in the hold queue when this " \
        "question was first shown (1 of them still are; 2 in it now)?" in page
    assert admin.commands() == []


def test_a_request_naming_many_messages_records_the_first_hundred_and_a_count(admin, home):
    """review28d R3: a confirmation of "all" names up to 50,000 queue ids; its event row
    held them all."""
    ids = ",".join(f"q{n:05d}" for n in range(150))
    admin.post("/configuration/hold/action", {"action": "drop", "ids": ids, "scope": "all"})
    assert len(admin.commands()[-1]["args"]["ids"]) == 150          # the core gets them all
    recorded = admin.events(Action.OBJECT_MODIFIED)[-1]["data"]["args"]
    assert recorded["ids"] == [f"q{n:05d}" for n in range(100)] and recorded["more_ids"] == 50
