"""In headless Chromium, by keyboard: a refused logon, report range or default route puts the
focus on the field to correct, and a routing entry's Delete asks before it deletes
(accessibility findings C3, C4, C5, C7; tests/console/test_error_fields.py and
test_delete_confirmations.py check the markup)."""

from __future__ import annotations

import pytest

from .conftest import log_on, stored_settings

# real Chromium, a second or more per test: run by `make test-slow` with the other slow suites
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _focused(page) -> str:
    return page.evaluate("document.activeElement.id")


def _focus_lands_on(page, element_id: str) -> None:
    """Chromium moves the focus to an `autofocus` field at a later rendering step, not when
    the page's alert is in the DOM (a CI run under load saw the alert before the focus), so
    wait for it, as a person does; a focus that never lands fails with where it is."""
    from playwright.sync_api import TimeoutError as WaitedInVain
    try:
        page.wait_for_function("id => document.activeElement && document.activeElement.id"
                               " === id", arg=element_id, timeout=10_000)
    except WaitedInVain:
        pass
    assert _focused(page) == element_id


def test_a_refused_logon_focuses_the_field_to_correct_and_says_why_in_an_alert(
        page, console_server):
    page.goto("/logon")
    page.press("#username", "Enter")                             # both fields empty
    page.wait_for_selector("#logon-errors[role=alert]")
    _focus_lands_on(page, "username")
    page.keyboard.type("admin")
    page.keyboard.press("Tab")
    page.keyboard.type("not the password")
    page.keyboard.press("Enter")
    page.wait_for_selector("#logon-refusal")
    _focus_lands_on(page, "password")
    assert page.get_attribute("#password", "aria-describedby") == "logon-refusal"
    assert page.input_value("#username") == "admin"
    log_on(page)


def test_a_bad_range_focuses_from_and_a_bad_default_port_focuses_port(page, console_server):
    log_on(page)
    page.goto("/reporting/summary")
    page.fill("#start", "2026-11-30T10:00")
    page.fill("#end", "2026-11-29T10:00")
    page.press("#end", "Enter")
    page.wait_for_selector("#start-error")
    _focus_lands_on(page, "start")
    assert page.get_attribute("#end", "aria-invalid") == "true"

    port = "default-routing__default___port"
    page.goto("/configuration/routing")
    page.fill("#default-routing__default___host", "smtp.example.com")
    page.fill(f"#{port}", "abc")
    page.press(f"#{port}", "Enter")
    page.wait_for_selector(f"#{port}-error")
    _focus_lands_on(page, port)
    assert page.get_attribute("#default-routing__default___host", "aria-invalid") is None


def test_routing_delete_by_keyboard_asks_then_deletes_only_that_entry(page, console_server):
    log_on(page)
    page.goto("/configuration/routing")
    for match in ("corp.test", "keep.test"):
        page.fill("#add-match", match)
        page.press("#add-match", "Enter")
        page.wait_for_selector(f"text={match} was added to the local routing list.")
    page.focus("button[aria-label='Delete corp.test']")
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm-what")
    assert "corp.test" in page.inner_text("#confirm-what")
    assert [e["match"] for e in stored_settings(console_server)["routing.local"]] == \
        ["corp.test", "keep.test"]                              # nothing before Yes
    page.focus("input[type=submit][value='Delete corp.test']")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=corp.test was removed from the local routing list.")
    assert [e["match"] for e in stored_settings(console_server)["routing.local"]] == \
        ["keep.test"]
    assert page.console_errors == []
