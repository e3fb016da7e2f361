"""The Status page and the summary report count the same spam, end to end: smtplib → the core
on loopback (real worker processes) → a loopback sink, then the console's Status page and its
Reporting › Summary page over the same time (accessibility finding, "outside accessibility").

The guide's Spam under Premium AntiSpam takes in the heuristic engine's detections (Table 7-7)
and a spam rule's hit is heuristic spam with score 100 (SPEC §3 rules.spam). Before, with
`premium.enabled` on (Premium AntiSpam itself is not built and scores nothing) the Status page
said "Spam messages detected 2" while its Antispam detections said Spam 0 and the summary
report Spam Detected 0: the heuristic engine's row, the only one counting, was hidden.
"""

from __future__ import annotations

import datetime as dt
import re
import smtplib
import time

import pytest
import trio

from core.app import run_core
from tests.support.console import console_on
from tests.support.core import routed_home
from tests.support.waiting import next_snapshot, until

pytestmark = pytest.mark.trio

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SPAM_RULE = {"enabled": True, "match": "any", "terms": ["cheap pills"], "none_of": []}
MESSAGES = {
    "gtube": b"From: a@client.test\r\nTo: user@local.test\r\nSubject: Test\r\n\r\n"
             + GTUBE.encode() + b"\r\n",
    "spam rule": b"From: a@client.test\r\nTo: user@local.test\r\nSubject: Offer\r\n\r\n"
                 b"cheap pills here\r\n",
    # spam that is also malformed is reported only as malformed (guide Table 7-9)
    "malformed gtube": b"From: a@client.test\r\nTo: user@local.test\r\nSubject: Broken\r\n"
                       b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n"
                       b"\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + GTUBE.encode() + b"\r\n",
}


def _send(port: int, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("a@client.test", ["user@local.test"], data)


def _figures(html: str) -> dict[str, int]:
    """Every `label → number` row of a page's tables."""
    return {label: int(n) for label, n in
            re.findall(r"<th[^>]*>([^<]+)</th><td[^>]*>(\d+)</td>", html)}


def _pages(home) -> tuple[dict[str, int], str]:
    """The Status page's figures, and the summary report's page over the last and next hour
    (in the `timezone` setting: UTC)."""
    now = dt.datetime.fromtimestamp(time.time(), dt.timezone.utc)
    window = {"start": (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
              "end": (now + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")}
    with console_on(home) as console:
        status = console.get("/status/").get_data(as_text=True)
        summary = console.get(f"/reporting/summary?generated=1&start={window['start']}"
                              f"&end={window['end']}").get_data(as_text=True)
    assert "The core is running" in status
    return _figures(status), summary


def _section(html: str, key: str) -> str | None:
    found = re.search(rf'id="section-{key}">(.*?)</section>', html, re.S)
    return found.group(1) if found else None


@pytest.mark.parametrize("message, heuristic, spam", [
    ("gtube", True, 1),                 # heuristic spam
    ("spam rule", True, 1),             # a spam rule's hit (the heuristic engine stands aside)
    ("spam rule", False, 1),            # spam rules apply with the heuristic engine off
    ("gtube", False, 0),                # heuristic engine off: GTUBE is not spam
    ("malformed gtube", True, 1),       # spam reported only as malformed still counts
])
async def test_status_page_and_summary_report_count_the_same_spam(
        tmp_path, sink, nursery, message, heuristic, spam):
    home = routed_home(tmp_path, sink, premium__enabled=True, heuristic__enabled=heuristic,
                       rules__spam=[SPAM_RULE])
    core = await nursery.start(run_core, home)
    await trio.to_thread.run_sync(_send, core.smtp_addresses[0][1], MESSAGES[message])
    await sink.await_messages(1, timeout=60)            # delivered (the tester's setting)
    await until(lambda: core.counters.values["delivered"] == 1, 60, flush=core.events.aflush)
    await next_snapshot(home, 60)                       # counts the delivery
    status, summary = await trio.to_thread.run_sync(_pages, home)
    premium = _figures(_section(summary, "premium"))
    assert status["Delivered"] == _figures(_section(summary, "message"))["Messages Delivered"] == 1
    # the System status total, the Antispam detections row and the summary report agree
    assert status["Spam messages detected"] == spam
    assert (status["Spam"], status["Suspected spam"], status["Reputation spam"]) == (spam, 0, 0)
    assert (premium["Spam Detected"], premium["Suspected Spam Detected"],
            premium["Reputation Spam Detected"], premium["Total"]) == (spam, 0, 0, spam)
    assert "Heuristic engine" not in status

    # without Premium AntiSpam: the heuristic engine's row, and no spam in the summary
    # report (guide: "If the Symantec Premium AntiSpam license is invalid, no spam
    # information is reported")
    with console_on(home) as console:
        console.set(premium__enabled=False)
    status, summary = await trio.to_thread.run_sync(_pages, home)
    assert status["Spam messages detected"] == status["Heuristic engine and spam rules"] == spam
    assert "Spam" not in status and _section(summary, "premium") is None
    core.cancel_scope.cancel()
