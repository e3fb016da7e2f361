-- The auto-generated whitelist (SPEC §3 whitelist.auto.*; guide §5 "Activating and managing an
-- auto-generated whitelist"): outbound recipients' non-local domains with their frequency.
-- Written by the core only (ARCHITECTURE invariant 4: core/scan/antispam/autowhitelist.py);
-- the console reads it and asks for changes through commands ("whitelist.auto.delete").
CREATE TABLE auto_whitelist (
    domain      TEXT PRIMARY KEY,          -- lower case, no trailing dot
    count       INTEGER NOT NULL,          -- outbound messages to the domain (frequency)
    first_seen  REAL NOT NULL,             -- unix time of the first one (ties: oldest goes)
    last_seen   REAL NOT NULL
);
CREATE INDEX auto_whitelist_by_count ON auto_whitelist (count, first_seen);
