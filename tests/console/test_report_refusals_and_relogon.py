"""What the report-only administrator's refused requests leave behind, and a second logon in
the same browser (authz findings 1-3): unauthorized_access events cut short and bounded per
client, a post without a form token refused for the role first, and the session a new logon
replaces ended on the server."""

from __future__ import annotations

import pytest

from console.security import LOGGED_TEXT_MAX_CHARS
from console.throttle import UNAUTHORIZED_EVENTS_PER_CLIENT, UNAUTHORIZED_WINDOW_SECONDS
from core.notify import HeldAlert, alert_key
from shared.events import Action

from .conftest import REPORT_PASSWORD, Console

LONG_PATH = "/antivirus/quarantine/" + "A" * 60_000 + "/download"


def cookie_value(console: Console) -> str:
    return console.client.get_cookie("mailmoat_session", domain="localhost").value


def goes_to_logon(response) -> bool:
    return response.status_code == 302 and "/logon" in response.headers["Location"]


# --- finding 1: each refused request stored its whole path, twice, without a limit ---------

def test_a_long_refused_path_is_stored_cut_short_and_its_alert_line_is_short(reporter):
    assert reporter.get(LONG_PATH).status_code == 403
    [event] = reporter.events(Action.UNAUTHORIZED_ACCESS)
    assert event["info"] == LONG_PATH[:LOGGED_TEXT_MAX_CHARS] + "…"
    assert event["data"] == {"user": "report", "path": LONG_PATH[:LOGGED_TEXT_MAX_CHARS],
                             "path_chars": len(LONG_PATH)}
    # what the core's alert mail lists for it
    assert alert_key(event) == "unauthorized_access"
    held = HeldAlert()
    held.add(event)
    assert len(held.lines[0]) < 2 * LOGGED_TEXT_MAX_CHARS


def test_control_characters_of_a_refused_path_are_stored_escaped(reporter):
    assert reporter.get("/antivirus/quarantine/x%0d%0aforged/download").status_code == 403
    [event] = reporter.events(Action.UNAUTHORIZED_ACCESS)
    assert event["info"] == "/antivirus/quarantine/x\\r\\nforged/download"


def test_refused_requests_write_a_bounded_number_of_events_per_client(reporter, clock):
    url = "/configuration/setup"
    for _ in range(UNAUTHORIZED_EVENTS_PER_CLIENT * 3):
        assert reporter.get(url).status_code == 403        # refused whether written or not
    events = reporter.events(Action.UNAUTHORIZED_ACCESS)
    assert len(events) == UNAUTHORIZED_EVENTS_PER_CLIENT
    assert events[-1]["data"] == {"user": "report", "path": url, "last_recorded": True}
    assert "the next ones are not recorded" in events[-1]["info"]
    # another client is not held back by this one
    assert reporter.get(url, environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 403
    assert reporter.events(Action.UNAUTHORIZED_ACCESS)[-1]["client_ip"] == "192.0.2.7"
    # once the window has passed (and the idle session with it: log on again), the client's
    # next event says how many were left out
    clock.advance(UNAUTHORIZED_WINDOW_SECONDS)
    assert reporter.logon("report", REPORT_PASSWORD).status_code == 302
    assert reporter.get(url).status_code == 403
    latest = reporter.events(Action.UNAUTHORIZED_ACCESS)[-1]
    left_out = UNAUTHORIZED_EVENTS_PER_CLIENT * 2
    assert latest["client_ip"] == "127.0.0.1"
    assert latest["data"] == {"user": "report", "path": url, "left_out": left_out}
    assert f"after {left_out} more from this client, not recorded" in latest["info"]


# --- finding 2: a report post without a valid token was "Form expired" and left no trace ----

@pytest.mark.parametrize("token", [None, "forged"])
@pytest.mark.parametrize("url, form", [
    ("/configuration/setup", {"smtp__port": "25"}),
    ("/configuration/accounts/password/admin",
     {"admin-new_password": "Taken-over1", "admin-confirm": "Taken-over1"}),
])
def test_a_report_post_to_an_admin_page_without_a_valid_token_is_refused_for_the_role(
        reporter, url, form, token):
    before = reporter.settings()
    data = dict(form, **({"csrf_token": token} if token else {}))
    response = reporter.post(url, data, csrf=False)
    assert response.status_code == 403
    assert b"Not allowed" in response.data and b"Form expired" not in response.data
    [event] = reporter.events(Action.UNAUTHORIZED_ACCESS)
    assert event["data"] == {"user": "report", "path": url}
    assert reporter.settings() == before


def test_the_token_check_is_unchanged_for_everyone_else(app, home, admin, reporter, clock):
    assert reporter.post("/configuration/setup", {}, csrf=False).status_code == 403
    refused = len(reporter.events(Action.UNAUTHORIZED_ACCESS))
    # the report role's own pages, the administrator and nobody: "Form expired" as before
    for console, url in ((reporter, "/reporting/summary"), (reporter, "/logoff"),
                         (admin, "/configuration/setup"), (Console(app, home),
                                                          "/configuration/setup")):
        response = console.post(url, {"smtp__port": "25"}, csrf=False)
        assert response.status_code == 400, url
        assert b"Form expired" in response.data
    assert admin.get("/configuration/setup").status_code == 200     # still logged on
    # a report session that has timed out is logged off, not refused for its role
    clock.advance(5 * 60 + 1)
    assert reporter.post("/configuration/setup", {}, csrf=False).status_code == 400
    assert len(reporter.events(Action.UNAUTHORIZED_ACCESS)) == refused
    assert reporter.events(Action.LOGOFF)[-1]["data"] == {"user": "report",
                                                          "reason": "timeout"}


# --- finding 3: a second logon in the same browser left the first session live -----------

def test_logging_on_again_in_the_same_browser_ends_the_earlier_session(app, home, admin,
                                                                         report_enabled):
    copied = cookie_value(admin)
    assert admin.logon("report", REPORT_PASSWORD).status_code == 302
    assert admin.get("/configuration/setup").status_code == 403     # the browser is report's
    [logoff] = admin.events(Action.LOGOFF)
    assert (logoff["info"], logoff["result"], logoff["client_ip"], logoff["data"]) == (
        "admin", "succeeded", "127.0.0.1", {"user": "admin", "reason": "logged_on_again"})
    # a copy of the administrator's cookie taken before opens nothing
    thief = Console(app, home)
    thief.client.set_cookie("mailmoat_session", copied)
    assert goes_to_logon(thief.get("/configuration/setup"))
    # the new session is live, and a failed logon in it ends nothing
    assert admin.logon("report", "wrong-password").status_code == 200
    assert admin.get("/status/").status_code == 200
    assert len(admin.events(Action.LOGOFF)) == 1
