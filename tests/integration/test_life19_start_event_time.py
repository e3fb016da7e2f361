"""`service_started` is stamped with the core's start, the Status page's "Last started", not
with the moment it was written (core/app.py; life19 C2). It is written once every listener
process is ready, seconds after the first one answered 250; and after a kill -9 under
`mailmoat run` the alert of the supervisor's `service_start_improper`, mailed by the alert
engine as soon as the core starts, read before the start it reports in the detail report.

A real core on a temp home; the supervisor's event written as `mailmoat run` writes it;
the alert goes to a loopback sink.
"""

from __future__ import annotations

import pytest
import trio

from core.app import run_core
from shared import db
from shared.events import Action, EventWriter
from tests.support.core import routed_home
from tests.support.waiting import at_least, events_of, next_snapshot

pytestmark = pytest.mark.trio


async def test_the_start_event_is_stamped_with_the_start_before_the_alerts_it_causes(
        tmp_path, sink, nursery):
    home = routed_home(tmp_path, sink, admin__emails=["admin@local.test"],
                       alerts__service_start_improper=True)
    async with trio.open_nursery() as earlier:          # the run before, which the alert
        core = await earlier.start(run_core, home)        # engine's cursor comes from
        core.cancel_scope.cancel()
    supervisor = EventWriter(home.db, "supervisor")     # it was killed: `run` says so
    supervisor.record(Action.SERVICE_START_IMPROPER,
                      info="core exited with status -9; restarted by mailmoat run")
    supervisor.close()
    core = await nursery.start(run_core, home)
    [alert] = await at_least(home, Action.ALERT_SENT, 1, flush=core.events.aflush)
    *_, started = await at_least(home, Action.SERVICE_STARTED, 2, flush=core.events.aflush)
    snapshot = await next_snapshot(home)
    [stopped] = events_of(home, Action.SERVICE_STOPPED)         # the run before's end
    assert started["time"] == snapshot["started_at"]
    conn = db.connect(home.db, readonly=True)
    try:                                # the detail report's order (shared/report.py)
        order = [row["action"] for row in conn.execute(
            "SELECT action FROM events WHERE action IN (?, ?, ?) AND id > ? ORDER BY time, id",
            (Action.SERVICE_START_IMPROPER, Action.SERVICE_STARTED, Action.ALERT_SENT,
             stopped["id"]))]
    finally:
        conn.close()
    assert order == [Action.SERVICE_START_IMPROPER, Action.SERVICE_STARTED, Action.ALERT_SENT]
    assert alert["rule"] == "alerts.service_start_improper"
    core.cancel_scope.cancel()
