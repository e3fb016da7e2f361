"""docs/settings.md states the limits the schema holds values to (settings findings 16,
section 7: the bodies refuse more than 10000 characters and whitelist.custom more than 10000
entries, and the reference encourages lists of thousands of entries): each text's length and
each list's entries in its Type, and, before the tables, that the Type column is where to
find them, with the figures the schema has."""

import re

import pytest

from shared.settings import SCHEMA
from shared.settings_doc import render
from shared.settings_types import ListOf, Template


def _type_cell(key: str) -> str:
    row = next(line for line in render().splitlines() if line.startswith(f"| `{key}` |"))
    return row.split(" | ")[1]


def test_the_header_says_where_the_limits_are_with_the_schemas_figures():
    header = render().split("\n## ", 1)[0]
    assert "The *Type* column gives the limits a value is held to" in header
    assert f"(`notify.admin.body`: ≤{SCHEMA['notify.admin.body'].kind.max_len} characters)" \
        in header
    assert f"(`whitelist.custom`:\n≤{SCHEMA['whitelist.custom'].kind.max_items})" in header


@pytest.mark.parametrize("key", [key for key, setting in SCHEMA.items()
                                 if isinstance(setting.kind, Template)
                                 or key.startswith("quarantine.notify.template_")])
def test_every_body_and_template_shows_its_length(key):
    assert f"≤{SCHEMA[key].kind.max_len} chars" in _type_cell(key)


@pytest.mark.parametrize("key", [key for key, setting in SCHEMA.items()
                                 if isinstance(setting.kind, ListOf)])
def test_every_list_shows_its_entries(key):
    kind = SCHEMA[key].kind       # and its minimum, if any (settings20 B1: smtp.listen)
    counts = f"{kind.min_items}..{kind.max_items}" if kind.min_items else f"≤{kind.max_items}"
    assert re.search(rf"\({re.escape(counts)} entries\)$", _type_cell(key))
