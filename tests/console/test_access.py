"""Who may open what: every endpoint declares its access, every page per role (SPEC §7)."""

from __future__ import annotations

import pytest

from console.roles import Access, access_of
from shared.events import Action

ADMIN_PAGES = [
    "/configuration/", "/configuration/accounts", "/configuration/setup",
    "/configuration/hold", "/configuration/scan-policy", "/configuration/routing",
    "/configuration/alerts", "/configuration/notifications", "/configuration/logging",
    "/configuration/diagnostics", "/configuration/setup/certificates",
    "/antivirus/", "/antispam/", "/filtering/", "/quarantine/", "/liveupdate/", "/licensing/",
    "/antivirus/outbreak", "/antivirus/quarantine",
    "/antispam/whitelist", "/antispam/auto-whitelist", "/antispam/rbl", "/antispam/blacklist",
    "/antispam/heuristic", "/antispam/spam-rules", "/antispam/premium",
]
REPORT_PAGES = ["/status/", "/reporting/"]
ADMIN_POSTS = [
    "/configuration/setup", "/configuration/accounts", "/configuration/accounts/password/admin",
    "/configuration/routing/local", "/configuration/routing/default", "/configuration/hold/confirm",
    "/configuration/hold/action", "/configuration/setup/certificates/self-signed",
    "/antivirus/", "/antivirus/outbreak",
    "/antispam/whitelist", "/antispam/auto-whitelist", "/antispam/auto-whitelist/manage",
    "/antispam/rbl", "/antispam/blacklist", "/antispam/heuristic", "/antispam/spam-rules",
    "/antispam/spam-rules/save", "/antispam/spam-rules/delete",
]


def test_every_endpoint_declares_its_access(app):
    missing = [rule.endpoint for rule in app.url_map.iter_rules()
               if access_of(app.view_functions[rule.endpoint]) is None]
    assert missing == []


def test_every_get_page_is_listed_here(app):
    """A new page must be added to the role tests above (so no page goes untested)."""
    listed = set(ADMIN_PAGES) | set(REPORT_PAGES) | {"/", "/logon"}
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and rule.endpoint != "static" and not rule.arguments:
            assert rule.rule in listed, rule.rule


@pytest.mark.parametrize("url", ADMIN_PAGES + REPORT_PAGES)
def test_anonymous_is_sent_to_logon(console, url):
    response = console.get(url)
    assert response.status_code == 302
    assert "/logon" in response.headers["Location"]


@pytest.mark.parametrize("url", ADMIN_POSTS)
def test_anonymous_post_is_sent_to_logon_and_changes_nothing(console, url):
    before = console.settings()
    response = console.post(url, {"smtp__port": "2525"})
    assert response.status_code == 302 and "/logon" in response.headers["Location"]
    assert console.settings() == before


@pytest.mark.parametrize("url", ADMIN_PAGES + REPORT_PAGES)
def test_administrator_sees_every_page(admin, url):
    response = admin.get(url, follow_redirects=True)
    assert response.status_code == 200
    assert b"Traceback" not in response.data


@pytest.mark.parametrize("url", REPORT_PAGES)
def test_report_only_sees_status_and_reporting(reporter, url):
    assert reporter.get(url).status_code == 200


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_report_only_gets_403_and_an_unauthorized_access_event(reporter, url):
    response = reporter.get(url)
    assert response.status_code == 403
    assert b"does not have permission" in response.data
    events = reporter.events(Action.UNAUTHORIZED_ACCESS)
    assert events[-1]["data"] == {"user": "report", "path": url}
    assert events[-1]["client_ip"] == "127.0.0.1"


@pytest.mark.parametrize("url", ADMIN_POSTS)
def test_report_only_cannot_post_admin_forms(reporter, url):
    before = reporter.settings()
    response = reporter.post(url, {"smtp__port": "2525"})
    assert response.status_code == 403
    assert reporter.settings() == before


def test_report_only_navigation_shows_only_its_pages(reporter):
    html = reporter.get("/status/").get_data(as_text=True)
    assert 'href="/reporting/"' in html
    assert 'href="/configuration/"' not in html


def test_access_levels_are_the_spec_roles(app):
    assert access_of(app.view_functions["status.index"]) is Access.REPORTS
    assert access_of(app.view_functions["reporting.index"]) is Access.REPORTS
    assert access_of(app.view_functions["configuration.setup"]) is Access.ADMIN
    assert access_of(app.view_functions["auth.logon"]) is Access.PUBLIC
