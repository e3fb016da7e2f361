"""Every MIME fixture of the shared corpus (malformed and tricky ones included) is processed
to a verdict with no unhandled exception, one event per finding, parts found, and most of
it delivered — sending everything to `unprocessable` is not robustness.

The messages run through the FilteringPipeline (in-process worker mode) with a recording
event writer; the queue manager's disposition event is what apply_result writes for the
returned disposition (tests/integration/test_pipeline_e2e.py runs a sample through the
whole core)."""

from __future__ import annotations

import shutil
from collections import Counter

import trio

from core.pipeline.service import FilteringPipeline
from shared.spool import Envelope
from tests.unit.pipeline.support import corpus_rows, settings

DISPOSITION_EVENT = {"drop": "dropped", "hold": "held", "forward": "forwarded",
                     "quarantine": "quarantined", "deliver": "delivered"}


class RecordingEvents:
    def __init__(self):
        self.rows = []

    def record(self, action, **fields):
        self.rows.append((str(action), fields))


async def test_every_corpus_message_gets_a_verdict_and_events(tmp_path):
    rows = corpus_rows("mime")                    # mime/ and mime-hostile/
    assert len(rows) > 300
    events = RecordingEvents()
    pipeline = FilteringPipeline(events, inline=True)
    values = settings()
    dispositions: Counter = Counter()
    multipart_without_children = []
    for index, (path, label) in enumerate(rows):
        work = tmp_path / f"m{index}"
        shutil.copyfile(path, work)
        envelope = Envelope.new(f"Q{index:011d}", "sender@outside.test", ["user@local.test"])
        before = len(events.rows)
        with trio.fail_after(30):
            result = await pipeline.process(envelope.queue_id, envelope, work, values)
        dispositions[result.disposition] += 1
        # the manager's disposition event (dispositions.apply_result / delivery)
        events.record(DISPOSITION_EVENT[result.disposition], queue_id=envelope.queue_id,
                      rule=result.rule)
        mine = [r for r in events.rows[before:] if r[1].get("queue_id") == envelope.queue_id]
        assert mine, path
        assert all(r[1].get("rule") or r[0] == "delivered" for r in mine), path
    total = sum(dispositions.values())
    assert dispositions["deliver"] >= 0.9 * total, dispositions
    actions = Counter(a for a, _ in events.rows)
    assert actions["malformed"] > 10                 # defects are seen and reported
    assert not multipart_without_children


def test_parts_are_found_in_the_corpus():
    from core.pipeline.decompose import decompose
    rows = corpus_rows("mime")
    values = settings()
    with_attachments = 0
    multipart_total = multipart_split = 0
    for path, _label in rows:
        view = decompose(path, {}, values)
        assert view.parts, path
        if view.files():
            with_attachments += 1
        if view.parts[0].content_type.startswith("multipart/"):
            multipart_total += 1
            multipart_split += len(view.parts) > 1
    assert with_attachments > 50
    assert multipart_split >= 0.95 * multipart_total
