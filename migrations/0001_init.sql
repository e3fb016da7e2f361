-- Mailmoat schema version 1: settings, events, status snapshot, console → core commands.
-- Times are UTC unix seconds (REAL); reports convert to the `timezone` setting.

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,            -- JSON
    updated_at REAL NOT NULL
);

-- Append-only facts (SPEC §6). Columns follow the detail CSV; `data` holds the rest as JSON.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    time          REAL NOT NULL,
    category      TEXT NOT NULL,
    action        TEXT NOT NULL,
    result        TEXT,
    queue_id      TEXT,
    connection_id TEXT,
    client_ip     TEXT,
    sender        TEXT,
    recipients    TEXT,                  -- ';'-separated
    subject       TEXT,
    size          INTEGER,
    rule          TEXT,
    info          TEXT,
    data          TEXT,                  -- JSON of the action-specific fields
    process       TEXT NOT NULL          -- core | console | cli
);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_action_time ON events (action, time);
CREATE INDEX events_queue_id ON events (queue_id) WHERE queue_id IS NOT NULL;

-- One row per process that reports status (the core today).
CREATE TABLE status (
    process    TEXT PRIMARY KEY,
    updated_at REAL NOT NULL,
    data       TEXT NOT NULL             -- JSON snapshot
);

-- Requests the console and CLI make of the core (ARCHITECTURE invariant 4).
CREATE TABLE commands (
    id         INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    kind       TEXT NOT NULL,
    args       TEXT NOT NULL DEFAULT '{}',  -- JSON
    requested_by TEXT,
    state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'failed')),
    result     TEXT,
    done_at    REAL
);
CREATE INDEX commands_pending ON commands (state, id);
