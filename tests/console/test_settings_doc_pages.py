"""docs/settings.md says which console pages only list their settings (settings_doc
LISTED_ONLY_PAGES; settings20 C4: it said every key could be changed on the page in its
heading, and four pages are read-only). Held to the console's real pages."""

import re

import pytest

from console.schema_forms import field_name
from shared.settings import PAGES, SCHEMA
from shared.settings_doc import LISTED_ONLY_PAGES, render

URLS = {"premium": "/antispam/premium", "quarantine": "/quarantine/", "ldap": "/quarantine/",
        "liveupdate": "/liveupdate/"}


def test_the_doc_names_the_listing_pages():
    header = render().split("\n## ", 1)[0]
    assert ", ".join(PAGES[page] for page in LISTED_ONLY_PAGES) + ".\n" in header
    assert set(URLS) == set(LISTED_ONLY_PAGES)


@pytest.mark.parametrize("page", LISTED_ONLY_PAGES)
def test_a_listing_page_shows_every_key_and_edits_none(admin, page):
    html = admin.get(URLS[page]).get_data(as_text=True)
    names = set(re.findall(r'name="([^"]+)"', html))
    for key, setting in SCHEMA.items():
        if setting.page == page:
            assert f"<code>{key}</code>" in html, key
            assert not {n for n in names if n.startswith(field_name(key))}, key


def test_a_page_listed_only_must_be_in_the_docs_list():
    # review20e D2: each view names its pages; one not in the one list is refused, so a
    # new listing page cannot be left out of docs/settings.md
    from console.placeholders import settings_sections
    with pytest.raises(ValueError, match="antispam"):
        settings_sections(("antispam",))
