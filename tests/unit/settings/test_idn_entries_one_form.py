"""Sender-list entries with an internationalised domain are stored in A-label form, as
admin.emails and routing.local store theirs, so `config get` and an export show one form
(settings findings 16, section 7); mail from the domain in either form still matches."""

import pytest

from core.scan.antispam.lists import blacklist_match, is_excluded, whitelist_match
from shared import db
from shared.settings_store import apply_changes, export_settings

TYPED = {
    "whitelist.custom": ["@Bücher.example", ".münchen.de", "Jörg@例子。广告"],
    "blacklist.entries": ["@müll.example", "SP*M@bücher.example", ".xn--mll-hoa.test"],
    "whitelist.auto.exclusions": ["Bücher.example", ".münchen.de"],
    "admin.emails": ["alerts@bücher.example"],
    "routing.local": [{"match": "münchen.de"}],
}
STORED = {
    "whitelist.custom": ["@xn--bcher-kva.example", ".xn--mnchen-3ya.de",
                         "jörg@xn--fsqu00a.xn--4rr70v"],
    "blacklist.entries": ["@xn--mll-hoa.example", "sp*m@xn--bcher-kva.example",
                          ".xn--mll-hoa.test"],
    "whitelist.auto.exclusions": ["xn--bcher-kva.example", "xn--mnchen-3ya.de"],
    "admin.emails": ["alerts@xn--bcher-kva.example"],
    "routing.local": [{"match": "xn--mnchen-3ya.de", "port": 25}],
}


@pytest.fixture
def exported(tmp_path):
    conn = db.connect(tmp_path / "mailmoat.db")
    db.migrate(conn)
    apply_changes(conn, TYPED)
    values = export_settings(conn)
    conn.close()
    return values


def test_every_list_stores_the_a_label_form(exported):
    assert {key: exported[key] for key in TYPED} == STORED


@pytest.mark.parametrize("sender, entry", [
    ("ann@bücher.example", "@xn--bcher-kva.example"),
    ("ann@xn--bcher-kva.example", "@xn--bcher-kva.example"),
    ("x@mail.münchen.de", ".xn--mnchen-3ya.de"),
    ("jörg@例子.广告", "jörg@xn--fsqu00a.xn--4rr70v"),
    ("jörg@xn--fsqu00a.xn--4rr70v", "jörg@xn--fsqu00a.xn--4rr70v"),
])
def test_the_whitelist_matches_either_form(exported, sender, entry):
    assert whitelist_match(sender, exported["whitelist.custom"]) == entry


@pytest.mark.parametrize("sender, entry", [
    ("bob@müll.example", "@xn--mll-hoa.example"),
    ("spam@BÜCHER.example", "sp*m@xn--bcher-kva.example"),
    ("x@a.müll.test", ".xn--mll-hoa.test"),
])
def test_the_blacklist_matches_either_form(exported, sender, entry):
    assert blacklist_match(sender, exported["blacklist.entries"]) == entry


@pytest.mark.parametrize("domain", ["bücher.example", "xn--bcher-kva.example",
                                    "mail.münchen.de"])
def test_the_exclusions_match_either_form(exported, domain):
    assert is_excluded(domain, exported["whitelist.auto.exclusions"])
