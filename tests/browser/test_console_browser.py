"""The console in headless Chromium: log on, Status, a Setup change, routing, a validation
error, log off. Screenshots of the Status page and the Setup tab go to test-artifacts/."""

from __future__ import annotations

import pytest

from shared import db
from shared.clock import FakeClock
from shared.events import Action, EventWriter
from shared.status import new_snapshot, write_snapshot

from .conftest import log_on, save, stored_settings

# real Chromium, a second or more per test: run by `make test-slow` with the other slow suites
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_log_on_read_status_page_and_log_off(page, console_server, artifacts):
    snapshot = new_snapshot(version="0.1.0", hostname="gw.example.com", smtp_port=25,
                            started_at=console_server.context.clock.now() - 7200)
    snapshot["counters"].update(accepted=23, delivered=45, dropped=2)
    conn = db.connect(console_server.home.db)
    try:
        write_snapshot(conn, snapshot)
    finally:
        conn.close()
    clock = FakeClock(console_server.context.clock.now())
    writer = EventWriter(console_server.home.db, process="core", clock=clock)
    for hours_ago, accepted, delivered, dropped, rejected in (
            (20, 4, 6, 0, 1), (12, 9, 14, 1, 0), (6, 15, 22, 2, 3), (1, 7, 9, 0, 1)):
        clock.value = console_server.context.clock.now() - hours_ago * 3600
        for action, count in ((Action.ACCEPTED, accepted), (Action.DELIVERED, delivered),
                              (Action.DROPPED, dropped), (Action.REJECTED, rejected)):
            for _ in range(count):
                writer.record(action)
    writer.close()

    page.goto("/status/")
    assert "/logon" in page.url  # anonymous: the logon page first
    log_on(page)
    assert page.locator(".status-grid tr:has(th:text-is('Accepted')) td").inner_text() == "23"
    assert page.locator(".status-grid tr:has(th:text-is('Delivered')) td").inner_text() == "45"
    assert page.locator("#core-state").inner_text().startswith("The core is running")
    assert page.locator("#traffic-chart").is_visible()
    assert "Accepted: 35" in page.locator("#traffic-chart").text_content()
    page.click("#refresh")
    page.wait_for_selector("h1:has-text('Status')")
    page.screenshot(path=str(artifacts / "status-page.png"), full_page=True)
    assert page.console_errors == []  # no CSP violation, no broken resource

    page.click("#logoff")
    page.wait_for_selector("text=You have logged off.")
    page.goto("/configuration/setup")
    assert "/logon" in page.url


def test_setup_change_is_saved_and_persisted(page, console_server, artifacts):
    log_on(page)
    page.click("nav >> text=Configuration")
    page.click(".tabs >> text=Setup")
    page.fill("#smtp__max_incoming", "25")
    page.check("#delivery__paused")
    save(page)
    assert page.input_value("#smtp__max_incoming") == "25"
    assert page.is_checked("#delivery__paused")
    values = stored_settings(console_server)
    assert values["smtp.max_incoming"] == 25 and values["delivery.paused"] is True
    page.screenshot(path=str(artifacts / "configuration-setup.png"), full_page=True)


def test_add_local_routing_entry(page, console_server):
    log_on(page)
    page.goto("/configuration/routing")
    page.fill("#add-match", "brightcorp.com")
    page.fill("#add-relay", "mailer.brightcorp.com")
    page.fill("#add-port", "25")
    page.click("#add-route-form input[type=submit]")
    page.wait_for_selector("text=brightcorp.com was added to the local routing list.")
    assert "mailer.brightcorp.com" in page.locator("#routing-list").inner_text()
    assert {"match": "brightcorp.com", "relay": "mailer.brightcorp.com", "port": 25} in \
        stored_settings(console_server)["routing.local"]


def test_invalid_value_shows_the_schema_message_next_to_the_field(page, console_server):
    log_on(page)
    page.goto("/configuration/setup")
    page.fill("#smtp__port", "70000")
    page.click("#save")
    error = page.locator("#smtp__port-error")
    error.wait_for()
    assert error.inner_text() == "must be between 1 and 65535"
    assert page.input_value("#smtp__port") == "70000"  # what was typed stays for correction
    assert stored_settings(console_server)["smtp.port"] == 25
