"""Content and spam rules read HTML as a reader is shown it, end to end: raw bytes over SMTP
(smtplib) -> the core on loopback (real worker processes) -> a loopback sink.

Regression for antispam adversary B1: `buy vi<span style='display:none'>zz</span>agra` and
the same with `font-size:0` were read "vizzagra" and delivered past the spam rule `viagra`.
The rules now also read the text without what inline CSS hides (decompose/hidden.py), and
still read the hidden text (a style sheet may show it again).
"""

from __future__ import annotations

import email
import smtplib
from email import policy

import pytest
import trio

from core.app import run_core
from shared.events import Action
from tests.support.core import routed_home
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

RULES = dict(rules__spam=[{"terms": ["viagra"]}],
             rules__content=[{"terms": ["cheap rolex"]}], rules__content_action="drop")


def _html(subject: str, markup: str) -> bytes:
    return (f"From: a@sender.test\r\nTo: user@local.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@sender.test>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/html; charset=utf-8\r\n\r\n{markup}\r\n").encode()


def _send_raw(port, data: bytes):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("a@sender.test", ["user@local.test"], data)


async def test_words_split_by_hidden_letters_are_found_and_hidden_words_still_are(
        tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, **RULES)
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    for raw in (_html("span", "<p>buy vi<span style='display:none'>zz</span>agra today</p>"),
                _html("font", "<p>buy vi<font style='font-size:0'>xx</font>agra today</p>"),
                _html("hidden", "<p>a <span style='display:none'>cheap rolex</span> b</p>"),
                _html("ham", "<p>lunch <span style='display:none'>zz</span>today</p>")):
        await trio.to_thread.run_sync(_send_raw, port, raw)
    delivered = await trio.to_thread.run_sync(sink.wait_for, 3)
    await until(lambda: events_of(home, Action.DROPPED), 30)
    await core.events.aflush()
    subjects = sorted(email.message_from_bytes(m.data, policy=policy.default)["Subject"]
                      for m in delivered)
    # before: "span" and "font" were delivered unmarked
    assert subjects == ["[Spam] font", "[Spam] span", "ham"]
    assert [r["rule"] for r in events_of(home, Action.SPAM_RULE_VIOLATION)] == \
        ["rules.spam[0]"] * 2
    [dropped] = events_of(home, Action.CONTENT_RULE_VIOLATION)
    assert dropped["rule"] == "rules.content[0]"
    core.cancel_scope.cancel()
