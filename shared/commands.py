"""The kinds of request that the console and the CLI leave for the core in the `commands`
table: one place for each name, as shared/events.py is for event actions, so that a name
misspelt on one side is an AttributeError and not a request the core calls unknown.

The core registers one handler per kind (core/app.py); the console and `mailmoat queue`
insert rows of these kinds.
"""

from __future__ import annotations

import enum

__all__ = ["Command", "HOLD_ACTIONS"]


class Command(enum.StrEnum):
    HOLD_REPROCESS = "hold.reprocess"                   # {"ids"?: [...]}
    HOLD_DROP = "hold.drop"                             # {"ids"?: [...]}
    HOLD_FORWARD = "hold.forward"                       # {"address", "subject"?, "ids"?}
    WHITELIST_AUTO_DELETE = "whitelist.auto.delete"     # {"domains": [...]}
    VIRUS_QUARANTINE_DELETE = "virus_quarantine.delete"  # {"ids": [...]}
    VIRUS_QUARANTINE_CENTRAL_RESEND = "virus_quarantine.central_resend"  # {"ids": [...]}


# The hold queue's actions as the console's buttons and `mailmoat queue ACTION --hold` name them.
HOLD_ACTIONS = {"reprocess": Command.HOLD_REPROCESS, "drop": Command.HOLD_DROP,
                "forward": Command.HOLD_FORWARD}
