"""A setting's whole help is shown under its field when it says more than the label
(review20c R2).

ac821cf shortened smtp.tls.outbound's label to "STARTTLS when delivering" and said the
field's description kept the whole help, but no template drew a description: the Setup
page no longer warned that Required makes bounces to your own users wait and that the
certificate is not verified.
"""

from __future__ import annotations

import html
import re

from shared.settings import NOT_BUILT_FEATURES, SCHEMA


def _hint(page: str, key: str) -> str | None:
    match = re.search(rf'<p class="hint" id="{re.escape(key)}-hint">(.*?)</p>', page, re.S)
    return html.unescape(match.group(1)) if match else None


def test_the_setup_page_shows_smtp_tls_outbounds_caveats_under_its_field(admin):
    page = admin.get("/configuration/setup").get_data(as_text=True)
    hint = _hint(page, "smtp.tls.outbound")
    assert hint == SCHEMA["smtp.tls.outbound"].help
    assert "routing.local relays included" in hint and "not verified" in hint
    # the select points to it, for assistive technology
    assert re.search(r'<select[^>]*aria-describedby="smtp.tls.outbound-hint"[^>]*'
                     r'name="smtp__tls__outbound"', page), page
    # a help that says no more than the label is not repeated under it
    assert _hint(page, "smtp.port") is None


def test_a_refused_field_points_to_its_error_and_its_hint(admin):
    data = {"smtp__max_incoming": "0"}
    page = admin.post("/configuration/setup", data).get_data(as_text=True)
    assert re.search(r'aria-describedby="smtp__max_incoming-error smtp.max_incoming-hint"',
                     page), page


def test_a_not_built_features_sentence_is_left_to_the_pages_notice(admin):
    page = admin.get("/configuration/logging").get_data(as_text=True)
    assert page.count(NOT_BUILT_FEATURES["siem"]) == 1      # the notice, not every field
    assert "stored locally even with" in _hint(page, "forwarding.enabled")


def test_hints_speak_of_the_console_not_the_command_line(admin):
    # review20f C1: "(null = never)" and `logging.local` are the command line's and the
    # docs' words; on a page a null value is an empty box and backticks are noise
    heuristic = admin.get("/antispam/heuristic").get_data(as_text=True)
    assert "(empty = never)" in _hint(heuristic, "heuristic.drop_score")
    assert "null" not in _hint(heuristic, "heuristic.forward_score")
    # review21b C1: nor a schema key's spelling, "drop_score"
    assert _hint(heuristic, "heuristic.forward_score").endswith("lower than the drop score.")
    logging = admin.get("/configuration/logging").get_data(as_text=True)
    assert "`" not in _hint(logging, "forwarding.enabled")
    assert "logging.local" in _hint(logging, "forwarding.enabled")
