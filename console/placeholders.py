"""Read-only listings of settings for the pages whose editors later issues build."""

from __future__ import annotations

import json

from console.context import settings
from shared.settings import PAGES, SCHEMA, display_value
from shared.settings_doc import LISTED_ONLY_PAGES

__all__ = ["settings_sections"]


def settings_sections(pages) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """The settings of `pages`, each one of LISTED_ONLY_PAGES: the one list of them, which
    docs/settings.md gives the administrator (review20e D2)."""
    unlisted = [page for page in pages if page not in LISTED_ONLY_PAGES]
    if unlisted:
        raise ValueError(f"pages not in settings_doc.LISTED_ONLY_PAGES: {unlisted}")
    values = settings()
    sections = []
    for page in pages:
        rows = [(key, json.dumps(display_value(key, values[key]), ensure_ascii=False)[:300],
                 s.help) for key, s in SCHEMA.items() if s.page == page]
        sections.append((PAGES[page], rows))
    return sections
