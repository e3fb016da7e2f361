"""Anti-spam Policy in headless Chromium, as an administrator uses it: the Heuristic Engine
(save, reload, a cross-key rule refused next to its field), the custom whitelist and
blacklist, the auto-generated whitelist (sorting, "Add to Custom Whitelist" → a setting and a
`whitelist.auto.delete` command for the core) and the real-time blacklists (at most three).

What was saved is read back from the data home, not only from the page. Every request the
browser makes must stay on 127.0.0.1. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json

import pytest

from shared import db

from .conftest import log_on, open_tab, save, stored_settings

# real Chromium, a second or more per test: run by `make test-slow` with the other slow suites
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _commands(server, kind: str) -> list[dict]:
    conn = db.connect(server.home.db)
    try:
        rows = conn.execute("SELECT kind, args, state FROM commands WHERE kind = ? ORDER BY id",
                            (kind,)).fetchall()
    finally:
        conn.close()
    return [{"kind": r["kind"], "args": json.loads(r["args"]), "state": r["state"]}
            for r in rows]


def test_heuristic_engine_saved_reloaded_and_bad_scores_refused(loopback_only, console_server,
                                                                artifacts):
    page = loopback_only
    log_on(page)
    open_tab(page, "Anti-spam Policy", "Heuristic Engine")
    page.check("#heuristic__enabled")
    page.select_option("#heuristic__sensitivity", "4")
    page.fill("#heuristic__subject_prefix", "[Probably spam]")
    page.fill("#heuristic__forward_score", "70")
    page.fill("#heuristic__drop_score", "90")
    page.fill("#heuristic__forward_to", "spamdesk@example.test")
    save(page)
    assert page.is_checked("#heuristic__enabled")
    assert page.input_value("#heuristic__sensitivity") == "4"
    assert page.input_value("#heuristic__subject_prefix") == "[Probably spam]"
    assert page.input_value("#heuristic__forward_score") == "70"
    assert page.input_value("#heuristic__drop_score") == "90"
    values = stored_settings(console_server)
    assert (values["heuristic.enabled"], values["heuristic.sensitivity"],
            values["heuristic.subject_prefix"], values["heuristic.forward_score"],
            values["heuristic.drop_score"], values["heuristic.forward_to"]) == \
        (True, 4, "[Probably spam]", 70, 90, "spamdesk@example.test")

    # Forward must be lower than drop: the rule's message next to the field, nothing saved.
    page.select_option("#heuristic__sensitivity", "2")
    page.fill("#heuristic__forward_score", "95")
    page.click("#save")
    error = page.locator("#heuristic__forward_score-error")
    error.wait_for()
    assert error.inner_text() == ("must be lower than “Drop messages that have a spam score "
                                  "greater than or equal to”")
    assert page.locator(".field.has-error #heuristic__forward_score").count() == 1
    assert page.input_value("#heuristic__forward_score") == "95"   # kept for correction
    assert page.input_value("#heuristic__sensitivity") == "2"
    assert page.locator("text=Changes saved.").count() == 0
    page.screenshot(path=str(artifacts / "antispam-heuristic-error.png"), full_page=True)
    after = stored_settings(console_server)
    assert after["heuristic.forward_score"] == 70 and after["heuristic.sensitivity"] == 4
    assert page.console_errors == []


def test_custom_whitelist_and_blacklist_persist(loopback_only, console_server, artifacts):
    page = loopback_only
    log_on(page)
    open_tab(page, "Anti-spam Policy", "Whitelist")
    page.check("#whitelist__custom__enabled")
    page.fill("#whitelist__custom", "@friend.test\n.partner.test\nboss@client.test")
    save(page)
    assert page.is_checked("#whitelist__custom__enabled")
    assert page.input_value("#whitelist__custom").splitlines() == \
        ["@friend.test", ".partner.test", "boss@client.test"]
    values = stored_settings(console_server)
    assert values["whitelist.custom.enabled"] is True
    assert values["whitelist.custom"] == ["@friend.test", ".partner.test", "boss@client.test"]
    page.screenshot(path=str(artifacts / "antispam-whitelist.png"), full_page=True)

    page.click("ul.tabs >> text=Custom Blacklist")
    page.wait_for_selector("#blacklist__entries")
    page.check("#blacklist__enabled")
    page.fill("#blacklist__entries", "spam*@bad.test\n@junk.test")
    page.select_option("#blacklist__action", "drop")
    save(page)
    assert page.input_value("#blacklist__entries").splitlines() == ["spam*@bad.test",
                                                                    "@junk.test"]
    assert page.input_value("#blacklist__action") == "drop"
    values = stored_settings(console_server)
    assert values["blacklist.enabled"] is True and values["blacklist.action"] == "drop"
    assert values["blacklist.entries"] == ["spam*@bad.test", "@junk.test"]

    # A malformed entry is refused with the schema's message; the list stays as it was.
    page.fill("#blacklist__entries", "spam*@bad.test\nnot an address")
    page.click("#save")
    page.locator("#blacklist__entries-error").wait_for()
    assert "must be @domain, .domain or an address" in page.inner_text(
        "#blacklist__entries-error")
    assert stored_settings(console_server)["blacklist.entries"] == ["spam*@bad.test", "@junk.test"]
    page.screenshot(path=str(artifacts / "antispam-blacklist.png"), full_page=True)
    assert page.console_errors == []


def _seed_auto_whitelist(server, rows) -> None:
    """The core writes this table; the test seeds it as the core's writer would."""
    conn = db.connect(server.home.db)
    try:
        conn.execute("DELETE FROM auto_whitelist")
        conn.executemany("INSERT INTO auto_whitelist (domain, count, first_seen, last_seen) "
                         "VALUES (?, ?, ?, ?)", rows)
    finally:
        conn.close()


def _listed_domains(page) -> list[str]:
    return page.locator("#auto-entries tbody input[name=domains]").evaluate_all(
        "boxes => boxes.map(b => b.value)")


def test_auto_generated_whitelist_sorts_and_adds_to_custom(loopback_only, console_server,
                                                           artifacts):
    page = loopback_only
    now = console_server.context.clock.now()
    _seed_auto_whitelist(console_server, [
        ("b.example.com", 5, now - 5000, now - 10), ("zeta.org", 40, now - 4000, now - 20),
        ("alpha.net", 5, now - 6000, now - 30), ("example.com", 1, now - 3000, now - 40)])
    log_on(page)
    open_tab(page, "Anti-spam Policy", "Auto-generated Whitelist")
    # By frequency (the default): highest count first, ties by first seen (oldest first).
    assert _listed_domains(page) == ["zeta.org", "alpha.net", "b.example.com", "example.com"]
    assert page.locator("#auto-entries tbody tr:has-text('zeta.org') td").nth(2) \
        .inner_text() == "40"
    page.click("#sort-domain")
    page.wait_for_selector("#sort-frequency")
    assert _listed_domains(page) == ["alpha.net", "example.com", "b.example.com", "zeta.org"]
    page.click("#sort-frequency")
    page.wait_for_selector("#sort-domain")
    assert _listed_domains(page) == ["zeta.org", "alpha.net", "b.example.com", "example.com"]

    page.check("#auto-entries input[value='alpha.net']")
    page.click("#to-custom")
    page.wait_for_selector("text=1 entry: added to the custom whitelist.")
    assert "@alpha.net" in stored_settings(console_server)["whitelist.custom"]
    commands = _commands(console_server, "whitelist.auto.delete")
    assert commands and commands[-1]["args"] == {"domains": ["alpha.net"]}
    assert commands[-1]["state"] == "pending"   # no core here: the request waits for it
    page.screenshot(path=str(artifacts / "antispam-auto-whitelist.png"), full_page=True)

    # Nothing selected: a hint, and no new command.
    page.click("#to-custom")
    page.wait_for_selector("text=Select one or more entries, then an action.")
    assert len(_commands(console_server, "whitelist.auto.delete")) == len(commands)
    assert page.console_errors == []


def test_real_time_blacklists_saved_at_most_three(loopback_only, console_server, artifacts):
    page = loopback_only
    log_on(page)
    open_tab(page, "Anti-spam Policy", "Real-time Blacklists")
    page.check("#zone0_enabled")
    page.fill("#zone0_zone", "bl.example.org")
    page.fill("#zone0_codes", "127.0.0.2\n127.0.0.4")
    page.fill("#zone1_zone", "dnsbl.example.net")
    page.select_option("#rbl__action", "reject")
    save(page)
    assert page.is_checked("#zone0_enabled") and not page.is_checked("#zone1_enabled")
    assert page.input_value("#zone0_zone") == "bl.example.org"
    assert page.input_value("#zone0_codes").splitlines() == ["127.0.0.2", "127.0.0.4"]
    assert page.input_value("#zone1_zone") == "dnsbl.example.net"
    assert page.input_value("#rbl__action") == "reject"
    values = stored_settings(console_server)
    assert values["rbl.zones"] == [
        {"enabled": True, "zone": "bl.example.org", "return_codes": ["127.0.0.2", "127.0.0.4"]},
        {"enabled": False, "zone": "dnsbl.example.net", "return_codes": []}]
    assert values["rbl.action"] == "reject"

    # The page offers exactly three zone rows; a fourth, forced into the form, is not stored.
    assert page.locator("input[id^=zone][id$=_zone]").count() == 3
    page.fill("#zone2_zone", "rbl.example.com")
    page.evaluate("""() => {
        const form = document.querySelector('#rbl-form');
        for (const [name, value] of [['zone3_enabled', 'y'], ['zone3_zone', 'four.example.org'],
                                     ['zone3_codes', '127.0.0.2']]) {
            const input = document.createElement('input');
            input.type = 'hidden'; input.name = name; input.value = value;
            form.appendChild(input);
        }
    }""")
    save(page, reload=False)
    zones = [z["zone"] for z in stored_settings(console_server)["rbl.zones"]]
    assert zones == ["bl.example.org", "dnsbl.example.net", "rbl.example.com"]
    assert "four.example.org" not in page.content()

    # A malformed return code is refused and the zones stay as they were.
    page.fill("#zone2_codes", "not-an-ip")
    page.click("#save")
    error = page.wait_for_selector("#zone2_codes-error")      # next to the row's field
    assert "must be an IPv4 address in 127.0.0.0/8" in error.inner_text()
    assert [z["zone"] for z in stored_settings(console_server)["rbl.zones"]] == zones
    assert stored_settings(console_server)["rbl.zones"][2]["return_codes"] == []
    page.screenshot(path=str(artifacts / "antispam-rbl.png"), full_page=True)
    assert page.console_errors == []


def test_spam_rule_terms_survive_saving_again_and_a_stale_edit_keeps_what_was_typed(
        loopback_only, console_server, browser, artifacts):
    """A term ending in a backslash took the next term into it when the rule was saved
    again; an edit refused because another tab deleted the rule lost what was typed."""
    page = loopback_only
    log_on(page)
    open_tab(page, "Anti-spam Policy", "Spam Rules")
    page.fill("#new-name", "paths")
    page.fill("#new-terms", "C:\\temp\\ , 1\\,000 dollars, 100\\*sure, last")
    page.click("#save-new")
    page.wait_for_selector("text=Spam rule saved.")
    stored = ["C:\\temp\\", "1,000 dollars", "100\\*sure", "last"]
    assert stored_settings(console_server)["rules.spam"][-1]["terms"] == stored
    index = len(stored_settings(console_server)["rules.spam"]) - 1
    page.fill(f"#r{index}-name", "paths renamed")           # only the name changes
    page.click(f"#save-r{index}")
    page.wait_for_selector("text=Spam rule saved.")
    rule = stored_settings(console_server)["rules.spam"][index]
    assert (rule["name"], rule["terms"]) == ("paths renamed", stored)
    assert page.input_value(f"#r{index}-terms") == "C:\\temp\\ , 1\\,000 dollars, 100\\*sure, last"

    # Tab B still shows the rule when tab A deletes it; B's edit is refused, kept to copy.
    page.fill(f"#r{index}-terms", "C:\\temp\\ , jackpot")
    other = page.context.new_page()
    other.goto("/antispam/spam-rules")
    other.click(f"#delete-{index}")
    other.click(f"input[type=submit][value='Delete rule {index + 1}']")    # the confirmation
    other.wait_for_selector("text=Spam rule deleted.")
    other.close()
    page.click(f"#save-r{index}")
    page.wait_for_selector("#rule-stale")
    assert "the rule list changed meanwhile" in page.inner_text("#rule-stale")
    assert page.input_value("#stale-terms") == "C:\\temp\\ , jackpot"
    assert page.input_value("#stale-name") == "paths renamed"
    assert page.locator(f"#r{index}-terms").count() == 0       # the rules as they are now
    assert len(stored_settings(console_server)["rules.spam"]) == index
    page.screenshot(path=str(artifacts / "antispam-spam-rule-stale.png"), full_page=True)
    assert page.console_errors == []


def test_repeated_entries_and_zones_are_named_where_they_were_typed(loopback_only,
                                                                     console_server, artifacts):
    page = loopback_only
    log_on(page)
    open_tab(page, "Anti-spam Policy", "Whitelist")
    before = stored_settings(console_server)["whitelist.custom"]
    page.fill("#whitelist__custom", "@a.example\n@b.example\n\n@B.example\n@c.example\n"
                                    "@a.example\n@bücher.example\n@xn--bcher-kva.example")
    page.click("#save")
    page.locator("#whitelist__custom-error").wait_for()
    assert page.inner_text("#whitelist__custom-error") == \
        "line 4 repeats line 2; line 6 repeats line 1; line 8 repeats line 7"
    assert stored_settings(console_server)["whitelist.custom"] == before

    page.click("ul.tabs >> text=Real-time Blacklists")
    page.wait_for_selector("#zone0_zone")
    zones = stored_settings(console_server)["rbl.zones"]
    for row, zone in enumerate(("rbl1.test", "RBL1.test.", "rbl1.test")):
        page.fill(f"#zone{row}_zone", zone)
    page.click("#save")
    page.locator("#zone2_zone-error").wait_for()
    assert page.locator("#zone0_zone-error").count() == 0
    assert [page.locator(f"#zone{row}_zone-error").all_inner_texts() for row in (1, 2)] == \
        [["repeats the zone of Blacklist 1"]] * 2
    assert stored_settings(console_server)["rbl.zones"] == zones
    page.screenshot(path=str(artifacts / "antispam-rbl-repeats.png"), full_page=True)
    assert page.console_errors == []


@pytest.mark.parametrize("url", ["/antispam/spam-rules", "/filtering/content-rules"])
def test_a_rules_terms_fields_are_as_wide_as_a_text_box(loopback_only, url):
    """Up to 50 comma-separated terms are edited on one line: the fields showed about 25
    characters (209 px; antispam17 C2)."""
    page = loopback_only
    log_on(page)
    page.goto(url)
    for field in page.locator("input[id$='terms'], input[id$='none_of']").all():
        assert field.bounding_box()["width"] >= 500
    assert page.locator("input[id$='terms']").count() >= 1
