-- Mailmoat schema version 2: hourly roll-ups of events for the reports (SPEC §2, guide ch. 7).
--
-- Invariant: event_hourly holds exactly
--     SELECT hour, action, item, generated, COUNT(*), SUM(size) FROM event_facts GROUP BY 1,2,3,4
-- at every commit. Triggers keep it so: every insert into `events` adds one to its row,
-- every delete (the retention purge, in short batches) takes one away and removes rows that
-- reach zero. Because the triggers run inside the inserting transaction, the one event
-- writer per process stays the only writer of both tables and a reader never sees an event
-- without its roll-up (or the reverse).
--
-- `item` is the name a summary section lists (guide Tables 7-2..7-4, SPEC §2 summary CSV):
--   virus_logged, file_repaired, file_deleted, mass_mailer_cleanup → the virus name
--   subject_blocked → the matched pattern;  attachment_deleted → the file name
--   encrypted_container → what was done (result: deleted | dropped | logged | forwarded)
-- read from the event's `data` ("virus", "pattern", "file") and falling back to `info`;
-- '' for every other action. `generated` is 1 for mail Mailmoat made itself (data "generated":
-- true): it counts as delivered, never as accepted.
--
-- The same expressions appear three times below (the view, the insert trigger, the delete
-- trigger); tests/unit/test_report_rollups.py checks that they agree.

CREATE TABLE event_hourly (
    hour      INTEGER NOT NULL,           -- UTC unix seconds of the hour's start
    action    TEXT NOT NULL,
    item      TEXT NOT NULL DEFAULT '',
    generated INTEGER NOT NULL DEFAULT 0,
    events    INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,           -- sum of `size` (Data Accepted)
    PRIMARY KEY (hour, action, item, generated)
) WITHOUT ROWID;

CREATE INDEX event_hourly_action ON event_hourly (action, hour);

-- Every event with its roll-up key: what the reports read for partial hours at the edges of a
-- range, and what the backfill below and the tests use.
CREATE VIEW event_facts AS
SELECT id, time, action, size,
       CAST(time / 3600 AS INTEGER) * 3600 AS hour,
       CASE
         WHEN action IN ('virus_logged', 'file_repaired', 'file_deleted', 'mass_mailer_cleanup')
           THEN COALESCE(CASE WHEN json_valid(data) THEN json_extract(data, '$.virus') END, info, '')
         WHEN action = 'subject_blocked'
           THEN COALESCE(CASE WHEN json_valid(data) THEN json_extract(data, '$.pattern') END, info, '')
         WHEN action = 'attachment_deleted'
           THEN COALESCE(CASE WHEN json_valid(data) THEN json_extract(data, '$.file') END, info, '')
         WHEN action = 'encrypted_container' THEN COALESCE(result, '')
         ELSE ''
       END AS item,
       CASE WHEN data IS NOT NULL AND json_valid(data)
                 AND json_extract(data, '$.generated') IN (1, 'true') THEN 1 ELSE 0 END
         AS generated
FROM events;

INSERT INTO event_hourly (hour, action, item, generated, events, bytes)
SELECT hour, action, item, generated, COUNT(*), COALESCE(SUM(size), 0)
FROM event_facts GROUP BY hour, action, item, generated;

CREATE TRIGGER events_rollup_insert AFTER INSERT ON events
BEGIN
    INSERT INTO event_hourly (hour, action, item, generated, events, bytes)
    VALUES (
        CAST(NEW.time / 3600 AS INTEGER) * 3600,
        NEW.action,
        CASE
          WHEN NEW.action IN ('virus_logged', 'file_repaired', 'file_deleted', 'mass_mailer_cleanup')
            THEN COALESCE(CASE WHEN json_valid(NEW.data) THEN json_extract(NEW.data, '$.virus') END, NEW.info, '')
          WHEN NEW.action = 'subject_blocked'
            THEN COALESCE(CASE WHEN json_valid(NEW.data) THEN json_extract(NEW.data, '$.pattern') END, NEW.info, '')
          WHEN NEW.action = 'attachment_deleted'
            THEN COALESCE(CASE WHEN json_valid(NEW.data) THEN json_extract(NEW.data, '$.file') END, NEW.info, '')
          WHEN NEW.action = 'encrypted_container' THEN COALESCE(NEW.result, '')
          ELSE ''
        END,
        CASE WHEN NEW.data IS NOT NULL AND json_valid(NEW.data)
                  AND json_extract(NEW.data, '$.generated') IN (1, 'true') THEN 1 ELSE 0 END,
        1,
        COALESCE(NEW.size, 0))
    ON CONFLICT (hour, action, item, generated)
    DO UPDATE SET events = events + 1, bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER events_rollup_delete AFTER DELETE ON events
BEGIN
    UPDATE event_hourly SET events = events - 1, bytes = bytes - COALESCE(OLD.size, 0)
    WHERE hour = CAST(OLD.time / 3600 AS INTEGER) * 3600
      AND action = OLD.action
      AND item = CASE
          WHEN OLD.action IN ('virus_logged', 'file_repaired', 'file_deleted', 'mass_mailer_cleanup')
            THEN COALESCE(CASE WHEN json_valid(OLD.data) THEN json_extract(OLD.data, '$.virus') END, OLD.info, '')
          WHEN OLD.action = 'subject_blocked'
            THEN COALESCE(CASE WHEN json_valid(OLD.data) THEN json_extract(OLD.data, '$.pattern') END, OLD.info, '')
          WHEN OLD.action = 'attachment_deleted'
            THEN COALESCE(CASE WHEN json_valid(OLD.data) THEN json_extract(OLD.data, '$.file') END, OLD.info, '')
          WHEN OLD.action = 'encrypted_container' THEN COALESCE(OLD.result, '')
          ELSE ''
        END
      AND generated = CASE WHEN OLD.data IS NOT NULL AND json_valid(OLD.data)
                  AND json_extract(OLD.data, '$.generated') IN (1, 'true') THEN 1 ELSE 0 END;
    DELETE FROM event_hourly
    WHERE hour = CAST(OLD.time / 3600 AS INTEGER) * 3600 AND action = OLD.action AND events <= 0;
END;
