"""Antivirus Policy in headless Chromium, as an administrator uses it: the settings tab
(engine, heuristics, actions; save, reload), the outbreak alert tab, and the virus quarantine
(empty, then one copy seeded in the spool's quarantine/virus queue the way the core's scan
service keeps it, listed and downloaded as the password-protected 7z).

What was saved is read back from the data home, not only from the page. Every request the
browser makes must stay on 127.0.0.1. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import io

import py7zr
import pytest

from shared.spool import Envelope, Spool

from .conftest import log_on, open_tab, save, stored_settings

# real Chromium, a second or more per test: run by `make test-slow` with the other slow suites
pytestmark = [pytest.mark.browser, pytest.mark.slow]

EICAR_MAIL = (b"From: a@outside.test\r\nTo: user@local.test\r\nSubject: infected\r\n\r\n"
              b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*\r\n")


def test_antivirus_settings_saved_and_reloaded(loopback_only, console_server, artifacts):
    page = loopback_only
    log_on(page)
    open_tab(page, "Antivirus Policy", "Antivirus Settings")
    assert "Virus definitions in force" in page.inner_text("#definitions")
    page.select_option("#av__engine", "both")
    page.select_option("#av__heuristics", "high")
    page.select_option("#av__on_virus", "delete")
    page.select_option("#av__on_not_removed", "log")
    page.select_option("#av__quarantine", "unrepaired")
    page.uncheck("#av__mass_mailer_cleanup")
    page.fill("#av__central_quarantine___host", "quarantine.example.test")
    page.fill("#av__central_quarantine___port", "2525")
    save(page)
    assert page.input_value("#av__engine") == "both"
    assert page.input_value("#av__heuristics") == "high"
    assert page.input_value("#av__on_virus") == "delete"
    assert page.input_value("#av__on_not_removed") == "log"
    assert page.input_value("#av__quarantine") == "unrepaired"
    assert not page.is_checked("#av__mass_mailer_cleanup")
    assert page.input_value("#av__central_quarantine___host") == "quarantine.example.test"
    values = stored_settings(console_server)
    assert (values["av.engine"], values["av.heuristics"], values["av.on_virus"],
            values["av.on_not_removed"], values["av.quarantine"],
            values["av.mass_mailer_cleanup"]) == \
        ("both", "high", "delete", "log", "unrepaired", False)
    assert values["av.central_quarantine"] == {"host": "quarantine.example.test", "port": 2525}

    # A port out of range is refused next to its field; nothing changes.
    page.fill("#av__central_quarantine___port", "70000")
    page.select_option("#av__heuristics", "off")
    page.click("#save")
    page.locator(".field.has-error .error").first.wait_for()
    assert "65535" in page.inner_text(".field.has-error .error")
    after = stored_settings(console_server)
    assert after["av.heuristics"] == "high"
    assert after["av.central_quarantine"] == {"host": "quarantine.example.test", "port": 2525}
    page.screenshot(path=str(artifacts / "antivirus-settings.png"), full_page=True)
    assert page.console_errors == []


def test_outbreak_alert_settings_saved(loopback_only, console_server, artifacts):
    page = loopback_only
    log_on(page)
    open_tab(page, "Antivirus Policy", "Outbreak Alert")
    page.check("#outbreak__enabled")
    page.fill("#outbreak__count", "25")
    page.fill("#outbreak__minutes", "15")
    page.fill("#outbreak__emails", "sec@example.test\nsoc@example.test")
    page.fill("#outbreak__subject", "Virus outbreak on the gateway")
    save(page)
    assert page.is_checked("#outbreak__enabled")
    assert page.input_value("#outbreak__count") == "25"
    assert page.input_value("#outbreak__minutes") == "15"
    assert page.input_value("#outbreak__emails").splitlines() == ["sec@example.test",
                                                                 "soc@example.test"]
    assert page.locator("#outbreak-no-recipients").count() == 0
    values = stored_settings(console_server)
    assert (values["outbreak.enabled"], values["outbreak.count"], values["outbreak.minutes"],
            values["outbreak.emails"], values["outbreak.subject"]) == \
        (True, 25, 15, ["sec@example.test", "soc@example.test"], "Virus outbreak on the gateway")

    page.fill("#outbreak__count", "0")
    page.click("#save")
    page.locator("#outbreak__count-error").wait_for()
    assert page.inner_text("#outbreak__count-error") == "must be between 1 and 100000"
    assert stored_settings(console_server)["outbreak.count"] == 25
    page.screenshot(path=str(artifacts / "antivirus-outbreak.png"), full_page=True)
    assert page.console_errors == []


def _quarantine(server, queue_id: str) -> None:
    """One copy as core/scan/service.py keeps it: a spool entry in quarantine/virus."""
    spool = Spool(server.home.spool)
    incoming = spool.open_incoming(queue_id)
    incoming.write(EICAR_MAIL)
    envelope = Envelope.new(queue_id, "a@outside.test", ["user@local.test"],
                            meta={"kind": "virus_quarantine", "virus": ["Mailmoat.Test.EICAR"],
                                  "files": ["message"], "actions": ["drop"],
                                  "quarantined_at": server.context.clock.now()})
    spool.commit([incoming.prepare(envelope)], "quarantine/virus")


def test_virus_quarantine_empty_then_listed_and_downloaded(loopback_only, console_server,
                                                          artifacts, tmp_path):
    page = loopback_only
    log_on(page)
    open_tab(page, "Antivirus Policy", "Virus Quarantine")
    assert "0 message(s)." in page.inner_text("main")
    assert page.locator("#virus-quarantine").count() == 0

    queue_id = "BRQ0123456789"
    _quarantine(console_server, queue_id)
    page.reload()
    assert "1 message(s)." in page.inner_text("main")
    rows = page.locator("#virus-quarantine tbody tr")
    assert rows.count() == 1
    cells = rows.first.locator("td").all_inner_texts()
    # a checkbox for Delete, then Quarantined, Sender, Recipients, Subject (none here), …
    assert cells[2:8] == ["a@outside.test", "user@local.test", "", "Mailmoat.Test.EICAR",
                          "message", "message dropped"]
    assert cells[8] == str(len(EICAR_MAIL))
    page.screenshot(path=str(artifacts / "antivirus-quarantine.png"), full_page=True)

    with page.expect_download() as info:
        rows.first.locator("a:text-is('Download')").click()
    download = info.value
    assert download.suggested_filename == f"virus-{queue_id}.7z"
    data = download.path().read_bytes()
    assert b"EICAR" not in data                          # encrypted, names included
    with py7zr.SevenZipFile(io.BytesIO(data), password="infected") as archive:
        archive.extractall(path=tmp_path)
    assert (tmp_path / f"{queue_id}.eml").read_bytes() == EICAR_MAIL
    assert page.console_errors == []
