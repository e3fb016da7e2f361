"""Heuristic engine scale, spam definitions (package format, refusal of altered sets, installed
set preferred), the auto-generated whitelist's rules (guide §5: 2000 entries, 50 removed,
exclusions, frequency) and the fixed corpus split."""

import json
import shutil

import pytest

from core.scan.antispam import definitions as defs
from core.scan.antispam.autowhitelist import EVICT_COUNT, MAX_ENTRIES, AutoWhitelist
from core.scan.antispam.engine import SENSITIVITY_THRESHOLDS, score_from_raw
from core.scan.antispam.heuristic_rules import RuleSet, RuleSetError
from core.scan.antispam.training import body_key, gateway_message, split_of, view_of
from shared.settings import defaults


def test_score_scale():
    assert SENSITIVITY_THRESHOLDS == {1: 90, 2: 80, 3: 70, 4: 60, 5: 50}
    assert score_from_raw(0.0, 5.0) == 50
    assert score_from_raw(5.0, 5.0) == 90
    assert score_from_raw(4.999, 5.0) == 89
    assert score_from_raw(100.0, 5.0) == 100 and score_from_raw(-100.0, 5.0) == 1


def test_packaged_definitions_load_and_are_small():
    d = defs.load(defs.PACKAGED_DIR)
    assert d.version and d.revision >= 1 and d.z90 > 0 and d.weights
    assert sum(p.stat().st_size for p in defs.PACKAGED_DIR.iterdir()) < 3 * 2 ** 20
    assert d.info["split"]["part"] == "train"


def test_altered_set_is_refused(tmp_path):
    target = tmp_path / "spam"
    shutil.copytree(defs.PACKAGED_DIR, target)
    rules = json.loads((target / defs.RULES_FILE).read_text())
    rules[0]["force_score"] = 1
    (target / defs.RULES_FILE).write_text(json.dumps(rules))
    with pytest.raises(defs.DefinitionsError, match="does not match its hash"):
        defs.load(target)


def test_installed_set_is_preferred_and_a_broken_one_ignored(tmp_path):
    packaged = defs.load(defs.PACKAGED_DIR)
    target = tmp_path / "spam"
    defs.write(target, version="2030-01-02", revision=7,
               rules_json=json.loads((defs.PACKAGED_DIR / defs.RULES_FILE).read_text()),
               bias=packaged.bias, weights=packaged.weights, z90=packaged.z90, info={})
    assert defs.current(target).label == "2030-01-02 rev 7"
    assert defs.current().label == defs.current(tmp_path / "none").label == packaged.label
    (target / defs.MODEL_FILE).write_bytes(b"garbage")
    import os
    os.utime(target / defs.MANIFEST_FILE, (1, 1))       # a new mtime: reload
    assert defs.current(target).label == packaged.label


def test_rules_refuse_bad_patterns_and_upper_case_insensitive_ones():
    with pytest.raises(RuleSetError):
        RuleSet.from_json([{"name": "x", "target": "body", "pattern": "("}])
    with pytest.raises(RuleSetError, match="lower case"):
        RuleSet.from_json([{"name": "x", "target": "body", "pattern": "FREE"}])
    with pytest.raises(RuleSetError, match="unknown test"):
        RuleSet.from_json([{"name": "x", "target": "test:nope"}])
    RuleSet.from_json([{"name": "x", "target": "body", "pattern": "\\S+FREE", "flags": ""}])


def test_split_is_by_body_so_copies_stay_together():
    a = b"Subject: one\r\nTo: a@x\r\n\r\nThe same body text, long enough to count as a body.\r\n"
    b = b"Subject: two\nFrom: b@y\n\nthe same   BODY text, long enough to count as a body.\n"
    assert body_key(a) == body_key(b) and split_of(a) == split_of(b)


COLLECTED = (b"From list-admin@lists.example  Tue Aug  6 12:53:24 2002\n"
             b"Return-Path: <list-admin@lists.example>\n"
             b"Delivered-To: zzzz@localhost.netnoteinc.com\n"
             b"Received: from localhost (localhost [127.0.0.1])\n"
             b"\tby phobos.labs.netnoteinc.com (Postfix) with ESMTP id F37BC441CC\n"
             b"Received: from dogma.slashnull.org [212.17.35.15]\n"
             b"\tby localhost with IMAP (fetchmail-5.9.0)\n"
             b"Received: from lists.example (lists.example [192.0.2.7]) by\n"
             b"    dogma.slashnull.org (8.11.6/8.11.6) with ESMTP id g74JU3v06596 for\n"
             b"    <jm-lists@jmason.org>; Sun, 4 Aug 2002 20:30:03 +0100\n"
             b"Received: from client.example ([198.51.100.3]) by lists.example\n"
             b"From: Someone <someone@client.example>\n"
             b"X-Keywords: \n"
             b"Status: RO\n"
             b"Subject: Hello\n\nBody text.\n")


def test_gateway_message_drops_what_the_collector_added_after_its_gateway():
    message, envelope = gateway_message(COLLECTED)
    assert envelope == {"sender": "list-admin@lists.example",
                        "recipients": ["jm-lists@jmason.org"]}
    view = view_of(message, envelope=envelope)
    names = [name.lower() for name, _ in view.headers]
    assert names == ["received", "received", "from", "subject"]
    assert "dogma.slashnull.org" in view.header("received")      # the gateway's own hop
    assert view.sender == "list-admin@lists.example" and view.body_text().strip() == "Body text."
    plain = b"From: a@b.example\nSubject: x\n\ntext\n"      # nothing to drop: unchanged
    assert gateway_message(plain) == (plain, {"sender": "", "recipients": []})


class Clock:
    def __init__(self):
        self.t = 0.0

    def now(self):
        self.t += 1
        return self.t


def _list(**changes):
    s = defaults()
    s.update({"whitelist.auto.enabled": True, "routing.local": [{"match": "local.test"}]})
    s.update({k.replace("__", "."): v for k, v in changes.items()})
    return AutoWhitelist("unused.db", lambda: s, Clock()), s


def test_auto_whitelist_collects_non_local_domains_with_frequency():
    wl, s = _list()
    wl.note_outbound(["a@partner.test", "b@partner.test", "c@local.test", "d@Other.TEST"], s)
    wl.note_outbound(["x@partner.test"], s)
    assert {d: e[0] for d, e in wl.entries.items()} == {"partner.test": 2, "other.test": 1}
    assert wl.contains("partner.test", s) and not wl.contains("local.test", s)


def test_auto_whitelist_exclusions_stop_counting_and_whitelisting():
    wl, s = _list()
    wl.note_outbound(["a@news.partner.test"], s)
    s["whitelist.auto.exclusions"] = ["partner.test"]
    wl.note_outbound(["a@news.partner.test", "b@partner.test"], s)
    assert {d: e[0] for d, e in wl.entries.items()} == {"news.partner.test": 1}
    assert not wl.contains("news.partner.test", s)


def test_auto_whitelist_full_list_drops_the_50_least_frequent_oldest_first():
    wl, s = _list()
    for i in range(MAX_ENTRIES):
        wl.note_outbound([f"u@d{i}.test"], s)
    for i in range(100, MAX_ENTRIES):
        wl.note_outbound([f"u@d{i}.test"], s)            # d0..d99 stay at count 1
    wl.note_outbound(["u@newcomer.test"], s)
    assert len(wl.entries) == MAX_ENTRIES - EVICT_COUNT + 1
    assert "newcomer.test" in wl.entries
    assert all(f"d{i}.test" not in wl.entries for i in range(EVICT_COUNT))
    assert all(f"d{i}.test" in wl.entries for i in range(EVICT_COUNT, 100))


def test_auto_whitelist_ties_of_one_message_go_by_name_not_by_the_order_learned():
    # tester27b D1: domains one message taught had the same count and first seen, and
    # which of them went was the order the recipients happened to be in
    wl, s = _list()
    names = [f"d{i:04d}.test" for i in range(MAX_ENTRIES)]
    wl.note_outbound([f"u@{d}" for d in reversed(names)], s)
    assert len({e[1] for e in wl.entries.values()}) == 1      # one first seen for all
    wl.note_outbound(["u@newcomer.test"], s)
    assert sorted(set(names) - set(wl.entries)) == names[:EVICT_COUNT]


def test_auto_whitelist_off_collects_nothing_and_delete_works():
    wl, s = _list(whitelist__auto__enabled=False)
    wl.note_outbound(["a@partner.test"], s)
    assert not wl.entries
    s["whitelist.auto.enabled"] = True
    wl.note_outbound(["a@partner.test"], s)
    assert wl.delete(["partner.test", "nothere.test"]) == 1 and not wl.entries


def test_signed_spam_package_installs_and_becomes_current(tmp_path):
    """The shared package format (shared/definitions.py) with type "spam"."""
    from shared import definitions as shared_defs
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    source = tmp_path / "src"
    packaged = defs.load(defs.PACKAGED_DIR)
    defs.write(source, version="2031-05-06", revision=2,
               rules_json=json.loads((defs.PACKAGED_DIR / defs.RULES_FILE).read_text()),
               bias=packaged.bias, weights=packaged.weights, z90=packaged.z90, info={})
    (source / defs.MANIFEST_FILE).unlink()       # the package gets its own manifest
    pem, public = shared_defs.generate_key()
    package = tmp_path / "spam.mmdef"
    shared_defs.build_package(source, load_pem_private_key(pem, None), package, kind="spam",
                              version="2031-05-06", revision=2)
    root = tmp_path / "definitions"
    shared_defs.install_package(package, root, [public], allow_older=True)
    installed = shared_defs.current(root, "spam")
    assert installed.source == "installed"
    assert defs.current(installed.path).label == "2031-05-06 rev 2"
