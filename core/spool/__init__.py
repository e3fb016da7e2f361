"""The queue manager: fast/slow/hold scheduling, retries, reordering, expiry, hold actions.

Public names: `QueueManager` (see manager.py for its rules), `retry_delay`, `retry_until`,
`retry_expired`, `SlowSchedule` (schedule.py).
"""

from core.spool.manager import CRASH_LIMIT, PROCESS_TIMEOUT_SECONDS, QueueManager
from core.spool.schedule import SlowSchedule, retry_delay, retry_expired, retry_until

__all__ = ["QueueManager", "SlowSchedule", "retry_delay", "retry_until", "retry_expired",
           "CRASH_LIMIT", "PROCESS_TIMEOUT_SECONDS"]
