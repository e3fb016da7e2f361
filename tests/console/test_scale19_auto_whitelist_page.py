"""The Auto-generated Whitelist page with a full list and a long exclusion list (scale19 B1):
it put every exclusion in the lists' one form again for each learned domain, 20 million
conversions and 52 s a page view at 2,000 entries and 10,000 exclusions. Now the list is
converted once (shared/idn.py `exclusion_set`). Counted here; timed by no test."""

from __future__ import annotations

import re

import pytest

import console.antispam.service
import shared.idn
from core.scan.antispam.autowhitelist import AutoWhitelist
from shared import db
from shared.clock import SYSTEM_CLOCK

LEARNED = 200
EXCLUSIONS = 300


def _learn(home, domains: list[str]) -> None:
    """Rows as the core's writer writes them (the table's only writer)."""
    whitelist = AutoWhitelist(home.db, dict, SYSTEM_CLOCK)
    conn = db.connect(home.db)
    try:
        whitelist._write(conn, [(d, 1, 1.0, 9.0) for d in domains], [])
    finally:
        conn.close()


@pytest.fixture
def conversions(monkeypatch):
    """How many times an entry was put in the lists' one form (shared/idn.py entry_form),
    by whichever module calls it."""
    count = [0]
    real = shared.idn.entry_form

    def counted(entry):
        count[0] += 1
        return real(entry)
    monkeypatch.setattr(shared.idn, "entry_form", counted)
    monkeypatch.setattr(console.antispam.service, "entry_form", counted)
    return count


def test_the_page_converts_each_exclusion_once_not_once_per_learned_domain(
        admin, home, conversions):
    _learn(home, [f"d{i}.partner{i % 7}.test" for i in range(LEARNED)])
    # distinct from anything cached by an earlier test: the first reading is counted
    exclusions = [f"x{i}.scale19-b1.test" for i in range(EXCLUSIONS - 1)] + ["partner3.test"]
    admin.set(whitelist__auto__exclusions=exclusions)
    conversions[0] = 0
    page = admin.get("/antispam/auto-whitelist").get_data(as_text=True)
    assert conversions[0] <= EXCLUSIONS + LEARNED
    # the answer is the core's: the domains under partner3.test are marked excluded
    marked = dict(re.findall(r'value="([^"]+)" id="d-\d+"></td>\s*<td><label[^>]*>[^<]*'
                             r'</label></td><td>\d+</td>\s*<td>([^<]*)</td>', page))
    assert len(marked) == LEARNED
    assert {d for d, status in marked.items() if status == "excluded"} == \
        {f"d{i}.partner3.test" for i in range(LEARNED) if i % 7 == 3}
