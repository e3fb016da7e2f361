"""The kinds of request that the console and the CLI leave for the core in the `commands`
table: one place for each name, as shared/events.py is for event actions, so that a name
misspelt on one side is an AttributeError and not a request the core calls unknown.

The core registers one handler per kind (core/app.py); the console and `mailmoat queue`
insert rows of these kinds.
"""

from __future__ import annotations

import enum

__all__ = ["Command", "HOLD_ACTIONS", "SLOW_ACTIONS", "can_run_again", "INTERRUPTED", "RESUMED",
           "RESUMED_RESULT", "WITHDRAWN"]


class Command(enum.StrEnum):
    HOLD_REPROCESS = "hold.reprocess"                   # {"ids"?: [...]}
    HOLD_DROP = "hold.drop"                             # {"ids"?: [...]}
    HOLD_FORWARD = "hold.forward"                       # {"address", "subject"?, "ids"?}
    SLOW_RETRY = "slow.retry"                           # {"ids"?: [...]}
    WHITELIST_AUTO_DELETE = "whitelist.auto.delete"     # {"domains": [...]}
    VIRUS_QUARANTINE_DELETE = "virus_quarantine.delete"  # {"ids": [...]}
    VIRUS_QUARANTINE_CENTRAL_RESEND = "virus_quarantine.central_resend"  # {"ids": [...]}


# The hold queue's actions as the console's buttons and `mailmoat queue ACTION --hold` name them.
HOLD_ACTIONS = {"reprocess": Command.HOLD_REPROCESS, "drop": Command.HOLD_DROP,
                "forward": Command.HOLD_FORWARD}
# The slow queue's, as `mailmoat queue ACTION --slow` names them.
SLOW_ACTIONS = {"retry": Command.SLOW_RETRY}


# The `result` of the object_modified event `mailmoat queue ACTION --hold` writes when it
# withdraws its request, which the core had not taken up (core/queue_commands.py): the event
# written as it asked (result "saved") stands for nothing done (clispec19 B4).
WITHDRAWN = "withdrawn"


# The result of a request a core was carrying out when it stopped (a kill -9, a crash, a
# backup of the database taken then) and that cannot simply be carried out again.
INTERRUPTED = ("not finished: the core stopped while carrying this out (part of it may be "
               "done); look at the result and ask again")


# The args key the core adds to such a request it carries out again (core/control.py): what
# it names may be gone because the first run did it, so "none of them is there" is done.
RESUMED = "resumed"
# The result of a request carried out again starts so.
RESUMED_RESULT = "carried out again after the core stopped while carrying it out: "


def can_run_again(kind: str, args: dict) -> bool:
    """Whether a request cut off in the middle can be carried out again from the start at
    the next core start and do what was asked (core/control.py): those that name what they
    act on, and whose second run skips what the first did. An action on every message in
    hold does not: mail held since the request would be taken in too; a forward or a
    resend would be made twice. A slow-queue retry may: it changes only when the next
    attempts are, and mail deferred since the request is mail it was asked for too."""
    if kind in (Command.VIRUS_QUARANTINE_DELETE, Command.WHITELIST_AUTO_DELETE,
                Command.SLOW_RETRY):
        return True
    if kind in (Command.HOLD_REPROCESS, Command.HOLD_DROP):
        return bool(args.get("ids"))
    return False
