"""The queue manager: fast/slow/hold scheduling, retries, reordering, expiry, hold actions.

Public names: `QueueManager` (see manager.py for its rules), `retry_delay`, `SlowSchedule`.
"""

from core.spool.manager import CRASH_LIMIT, PROCESS_TIMEOUT_SECONDS, QueueManager
from core.spool.schedule import SlowSchedule, retry_delay

__all__ = ["QueueManager", "SlowSchedule", "retry_delay", "CRASH_LIMIT",
           "PROCESS_TIMEOUT_SECONDS"]
