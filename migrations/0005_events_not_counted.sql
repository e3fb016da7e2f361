-- Mailmoat schema version 5: an index of the events a report figure leaves out by their
-- result (shared/report.py NOT_COUNTED): a refused recipient's `rejected`, a `quarantined`
-- whose copy was not kept, and the antispam events of a check a whitelist made stand aside
-- (result "whitelisted"). The roll-ups (0002) do not key `result`, so a figure counts these
-- from the events; through events_action_time that meant every event of the action in the
-- range (a 30-day Spam Detected over a million heuristic_spam events: ~0.2-0.3 s, against
-- ~1-7 ms from the roll-ups: review21b D1). This index holds only the few left out, with
-- their result, so the count reads those alone and never the table. The report's query names
-- the same IN list, which is how SQLite knows it may use a partial index
-- (tests/unit/test_report_not_counted.py checks it does).
CREATE INDEX IF NOT EXISTS events_not_counted ON events (action, result, time)
    WHERE result IN ('recipient', 'skipped_low_disk', 'whitelisted');
