"""Error messages quote what was typed with the console's visible marks (`⟨U+202E⟩`), not
Python's repr escapes (console18 C2: "'a\\x01\\x07\\x1b[31mred' is not an ISO 8601 date",
"the common name '\\u202eexe.gpj …' is not a host name")."""

from __future__ import annotations

from shared.shown_text import quoted


def test_quoted_marks_every_character_that_does_not_print():
    assert quoted("a\x01\x1b[31m\u202eb\u200b\ufeff") == \
        "'a⟨U+0001⟩⟨U+001B⟩[31m⟨U+202E⟩b⟨U+200B⟩⟨U+FEFF⟩'"
    assert quoted("שלום é 💩") == "'שלום é 💩'"
    assert quoted("x" * 120, 100) == "'" + "x" * 100 + "…'"


def test_a_report_date_with_control_characters_is_quoted_with_marks(admin):
    page = admin.get("/reporting/detail?generated=1&start=a%01%1b%5B31m%E2%80%AEred"
                     "&end=2027-01-15T08:00").get_data(as_text=True)
    assert "&#39;a⟨U+0001⟩⟨U+001B⟩[31m⟨U+202E⟩red&#39; is not an ISO 8601 date" in page
    assert "\\x1b" not in page and "\\u202e" not in page
