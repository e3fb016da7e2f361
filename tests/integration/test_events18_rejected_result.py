"""A connection refused with 421 by `delivery.reject_incoming` is a `rejected` event whose
result is the reply code, as every other refusal's (docs/reporting.md "Rejected messages";
reports18 C2: the result was empty, the 421 only in the info). It ends as SMTP means: our
421, then `disconnected`.

A real `SmtpServer` on loopback (the helpers of test_smtp_hostile_clients).
"""

from __future__ import annotations

import pytest

from shared.events import Action
from tests.integration.test_events18_connection_end import _ended
from tests.integration.test_smtp_hostile_clients import _Client, _listen

pytestmark = pytest.mark.trio


async def test_reject_incoming_is_a_rejected_event_with_the_reply_code(tmp_path, nursery):
    listener = await _listen(nursery, tmp_path, delivery__reject_incoming=True)
    client = await _Client.open(listener.port)
    assert (await client.reply()).startswith(b"421 ")
    assert await client.reply() == b""

    [(action, _)] = await _ended(listener)
    assert action is Action.DISCONNECTED
    [rejected] = listener.events.of(Action.REJECTED)
    assert rejected["rule"] == "delivery.reject_incoming"
    assert rejected["result"] == "421"
