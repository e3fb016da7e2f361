"""Read-only listings of settings for the pages whose editors later issues build."""

from __future__ import annotations

import json

from console.context import settings
from shared.settings import PAGES, SCHEMA, display_value

__all__ = ["settings_sections"]


def settings_sections(pages) -> list[tuple[str, list[tuple[str, str, str]]]]:
    values = settings()
    sections = []
    for page in pages:
        rows = [(key, json.dumps(display_value(key, values[key]), ensure_ascii=False)[:300],
                 s.help) for key, s in SCHEMA.items() if s.page == page]
        sections.append((PAGES[page], rows))
    return sections
