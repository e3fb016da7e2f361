"""Session cookies in Chromium against the real HTTP and HTTPS listeners (console-security
finding 2): the session of an HTTPS logon is sent only over HTTPS, and a browser that has an
HTTPS session can still log on over plain HTTP (the two schemes' cookies have their own
names, so the Secure one cannot shadow the other)."""

from __future__ import annotations

import pytest

from shared import db
from shared.settings_store import apply_changes

from .conftest import ADMIN_PASSWORD

# real Chromium, a second or more per test: run by `make test-slow` with the other slow suites
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _set(server, **changes) -> None:
    conn = db.connect(server.home.db)
    try:
        apply_changes(conn, {k.replace("__", "."): v for k, v in changes.items()})
    finally:
        conn.close()


@pytest.fixture
def context(browser, console_server):
    context = browser.new_context(ignore_https_errors=True)  # the home's self-signed pair
    context.set_default_timeout(10_000)
    yield context
    context.close()


def _log_on(page) -> None:
    page.fill("#username", "admin")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("input[type=submit][value='Log On']")


def _first_request(response):
    request = response.request
    while request.redirected_from is not None:
        request = request.redirected_from
    return request


def test_the_https_logon_session_is_not_sent_to_the_http_port(context, console_server):
    urls = console_server.urls()
    _set(console_server, https__logons=True)
    try:
        page = context.new_page()
        page.goto(urls["http"] + "configuration/setup")
        assert page.url == urls["https"] + "logon?next=/configuration/setup"
        _log_on(page)
        page.wait_for_url(urls["https"] + "configuration/setup")
        [cookie] = [c for c in context.cookies() if c["name"].endswith("mailmoat_session")]
        assert cookie["name"].startswith("__Host-") and cookie["secure"] and cookie["path"] == "/"
        # an http:// link to an admin page. On a real host name Chromium does not send the
        # Secure cookie there; to 127.0.0.1 it does (loopback counts as a trustworthy origin),
        # which shows the other half: the HTTP listener does not take it, and leads the
        # browser through the HTTPS logon (already logged on) back to the page over HTTPS
        response = page.goto(urls["http"] + "configuration/setup")
        first = _first_request(response)
        assert first.url == urls["http"] + "configuration/setup"
        assert first.response().status == 302
        assert "/logon?next=" in first.response().headers["location"]
        assert page.url == urls["https"] + "configuration/setup"
        assert page.locator("h1").inner_text() == "Configuration"
    finally:
        _set(console_server, https__logons=False)


def test_http_logon_works_in_a_browser_that_has_an_https_session(context, console_server):
    urls = console_server.urls()
    page = context.new_page()
    page.goto(urls["https"] + "logon")
    _log_on(page)
    page.wait_for_url(urls["https"] + "status/")
    page.goto(urls["http"] + "logon")
    _log_on(page)
    page.wait_for_url(urls["http"] + "status/")
    assert page.locator("h1").inner_text() == "Status"
    names = sorted(c["name"] for c in context.cookies())
    assert names == ["__Host-mailmoat_session", "mailmoat_session"]
