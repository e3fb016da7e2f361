"""A form posted after the session ended is not saved, and the console says so: on the logon
page, and on the page logging on leads back to (console18 B2: the logon page said only that
the session had ended, and the page after it showed the old value, nothing else)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from shared.events import Action
from tests.support.core import ADMIN_PASSWORD

NOT_SAVED = ("Your change to Anti-spam Policy › Heuristic Engine was not saved: your session "
             "had ended.")


def _unsaved_field(page: str) -> str:
    return re.search(r'name="unsaved" type="hidden" value="([^"]*)"', page).group(1)


def test_the_logon_page_and_the_page_after_it_say_the_change_was_not_saved(admin, clock):
    clock.advance(5 * 60 + 1)                                # admin.timeout_minutes 5
    response = admin.client.post("/antispam/heuristic", data={"csrf_token": admin.token()},
                                 headers={"Referer": "http://localhost/antispam/heuristic"})
    assert urlsplit(response.headers["Location"]).path == "/logon"
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query == {"next": ["/antispam/heuristic"], "unsaved": ["1"]}

    logon_page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert f"{NOT_SAVED} Log on, then make it again." in logon_page
    assert _unsaved_field(logon_page) == "1"

    after = admin.post("/logon", {"username": "admin", "password": ADMIN_PASSWORD,
                                  "next": "/antispam/heuristic", "unsaved": "1"})
    assert after.headers["Location"] == "/antispam/heuristic"
    page = admin.get("/antispam/heuristic").get_data(as_text=True)
    assert f"{NOT_SAVED} Make it again." in page
    assert admin.events(Action.OBJECT_MODIFIED) == []


def test_an_ordinary_logon_and_a_late_logoff_say_nothing_of_it(admin, clock):
    clock.advance(5 * 60 + 1)
    response = admin.client.post("/logoff", data={"csrf_token": admin.token()})
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "was not saved" not in page and _unsaved_field(page) == ""
    after = admin.logon()
    assert "was not saved" not in admin.get(after.headers["Location"]).get_data(as_text=True)
