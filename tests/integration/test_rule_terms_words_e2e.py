"""Spam rule terms are words, end to end: messages over SMTP (smtplib) -> the core on
loopback (real worker processes) -> a loopback sink.

Guide finding 2 (B), the tester's spamrule_repro.sh: the spam rule `v*agra, c?alis` with the
heuristic drop score 95 dropped an invoice ("Vendor" at the top, "Agra" 200 lines later) and
"Our specialist will call you on Monday." as spam with score 100.
"""

from __future__ import annotations

import email
from email import policy

import pytest
import trio

from core.app import run_core
from shared.events import Action
from tests.support.core import routed_home
from tests.support.mail import send_text
from tests.support.waiting import events_of, until

pytestmark = pytest.mark.trio

INVOICE = ("Vendor invoice attached.\n" + "Lorem ipsum dolor sit amet.\n" * 200
           + "Regards from the Agra office.")


async def test_innocent_words_pass_a_wildcard_spam_rule_and_its_spam_is_dropped(
        tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, heuristic__enabled=True, heuristic__drop_score=95,
                       rules__spam=[{"enabled": True, "match": "any",
                                     "terms": ["v*agra", "c?alis"], "none_of": []}])
    core = await nursery.start(run_core, home)
    port = core.smtp_addresses[0][1]
    for subject, body in (("Invoice 4711", INVOICE),
                          ("Appointment", "Our specialist will call you on Monday."),
                          ("Offer", "buy v1agra now")):
        await trio.to_thread.run_sync(send_text, port, subject, body, "a@x.test")
    delivered = await trio.to_thread.run_sync(sink.wait_for, 2)
    await until(lambda: events_of(home, Action.DROPPED), 30)
    await core.events.aflush()
    subjects = sorted(email.message_from_bytes(m.data, policy=policy.default)["Subject"]
                      for m in delivered)
    # before: both were dropped ("matched: 'v*agra'", "matched: 'c?alis'"; score 100)
    assert subjects == ["Appointment", "Invoice 4711"]
    [violation] = events_of(home, Action.SPAM_RULE_VIOLATION)
    assert "'v*agra'" in violation["info"]
    core.cancel_scope.cancel()
