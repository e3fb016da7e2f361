"""antispam21 B2: "Add to Custom Whitelist" on the Auto-generated Whitelist page takes the
domains off the auto-generated list at once; with the custom whitelist switched off they then
stop being whitelisted at all. The page said so only after the move. While the custom
whitelist is off, the page says so beside that button, before the move (and warns again
after it, as docs/antispam.md says)."""

from __future__ import annotations

import html
import re

from console.antispam.service import CUSTOM_WHITELIST_OFF
from tests.console.test_antispam import _seed_auto


def _to_custom_button(page: str) -> str:
    [button] = re.findall(r'<input[^>]*id="to-custom"[^>]*>', page)
    return button


def test_the_page_says_before_the_move_that_the_custom_whitelist_is_off(admin, home):
    _seed_auto(home, [("partner.example", 3, 1.0, 9.0)])
    page = admin.get("/antispam/auto-whitelist").get_data(as_text=True)
    [note] = re.findall(r'<p class="notice" id="to-custom-note">(.*?)</p>', page, re.S)
    assert html.unescape(note).startswith(CUSTOM_WHITELIST_OFF)
    assert "leave this list at once" in CUSTOM_WHITELIST_OFF
    assert 'href="/antispam/whitelist"' in note
    # next to the button, and read with it
    assert page.index('id="to-custom-note"') < page.index('id="to-custom"')
    assert 'aria-describedby="to-custom-note"' in _to_custom_button(page)
    assert admin.settings()["whitelist.custom"] == []            # nothing moved by looking

    admin.set(whitelist__custom__enabled=True)
    page = admin.get("/antispam/auto-whitelist").get_data(as_text=True)
    assert 'id="to-custom-note"' not in page
    assert "aria-describedby" not in _to_custom_button(page)
