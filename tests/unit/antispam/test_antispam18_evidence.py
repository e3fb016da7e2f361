"""A heuristic_spam event says why, also when no rule hit (core/scan/antispam/engine.py rule 3).

Regression, hostile18 C1: 4,000 text/plain parts "part N" scored 100 from the token model
alone, and the event carried "rules": [] — the administrator could not see why.
"""

from core.pipeline.checks import antispam
from core.scan.antispam.engine import MAX_EVIDENCE, describe
from tests.unit.pipeline.support import message, settings, view_of

SPAM = {"heuristic__enabled": True, "heuristic__sensitivity": 5}


def _many_parts(count: int = 4000) -> bytes:
    parts = b"".join(b"--P\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i
                     for i in range(count))
    return (b"From: Attacker <attacker@hostile.test>\r\nTo: user@local.test\r\n"
            b"Subject: four thousand parts\r\nMessage-ID: <4k@hostile.test>\r\n"
            b"Date: Mon, 30 Nov 2026 00:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=P\r\n\r\n" + parts + b"--P--\r\n")


def test_a_score_from_the_token_model_alone_names_what_weighed_most():
    [finding] = [f for f in antispam.check(view_of(_many_parts()), settings(**SPAM))
                 if f.event]
    assert finding.event == "heuristic_spam" and finding.score == 100
    assert finding.data["rules"] == []                  # no rule hit: the model alone
    evidence = finding.data["evidence"]
    assert 0 < len(evidence) <= MAX_EVIDENCE
    assert any(item.startswith('word "') for item in evidence)     # the parts' numbers
    assert "; most weight: " + ", ".join(evidence) + " (of " in finding.reason
    assert " features towards spam)" in finding.reason


def test_rules_that_hit_stay_and_the_evidence_follows_them():
    links = b"".join(b'<a href="http://x%d.test/">x</a>\r\n' % i for i in range(300))
    raw = (b"From: a@hostile.test\r\nTo: user@local.test\r\nSubject: offer\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n<html><body>" + links
           + b"</body></html>\r\n")
    [finding] = [f for f in antispam.check(view_of(raw), settings(**SPAM)) if f.event]
    assert "html_only" in finding.data["rules"] and "rule html_only" in finding.data["evidence"]
    rules = ", ".join(finding.data["rules"][:6])
    assert f"; {rules}; most weight: " in finding.reason


def test_mail_that_is_not_spam_gets_no_finding_and_no_evidence():
    raw = message("Minutes of Tuesday", body="Hi all,\nthe minutes are attached.\nAnn\n")
    assert [f for f in antispam.check(view_of(raw), settings(**SPAM)) if f.event] == []


def test_features_read_in_words():
    assert describe("1618") == 'word "1618"'
    assert describe("r:html_only") == "rule html_only"
    assert describe("s:free") == "Subject word free"
    assert describe("s:shape:caps") == "Subject shape caps"
    assert describe("h:content-type:multipart/mixed") == "header content-type: multipart/mixed"
    assert describe("x:bulk:rp_empty") == "structure bulk:rp_empty"
    assert describe("zz:unknown") == 'word "zz:unknown"'
