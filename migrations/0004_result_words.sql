-- Mailmoat schema version 4: one pair of result words, the guide's "(Succeeded/Failed)"
-- (Tables 7-5, 7-6; shared/events.py SUCCEEDED, FAILED). Logon, failed logon and definitions
-- updated said success/failure, logoff said how it ended
-- (logoff, timeout, ...: also its data's `reason`), while connections said succeeded/failed, so a report
-- searched for "failed" missed failed logons. `result` is in no roll-up (0002), so rewriting
-- it changes no count.
UPDATE events SET result = 'succeeded'
    WHERE action IN ('logon', 'definitions_updated', 'liveupdate') AND result = 'success';
UPDATE events SET result = 'failed'
    WHERE action IN ('logon', 'failed_logon', 'definitions_updated', 'liveupdate')
      AND result = 'failure';
-- every logoff's result was its reason (logoff, timeout, password_changed, ...), in its data too
UPDATE events SET result = 'succeeded' WHERE action = 'logoff';
