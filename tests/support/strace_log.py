"""Reading `strace -f -y -o FILE` output: completed system calls in the order they finished.

With -f, a call interrupted by another thread's line is printed as `PID call(args <unfinished
...>` and later `PID <... call resumed>rest`; a call counts at the line where it completed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Syscall", "completed_calls"]

_LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<body>.*)$")
_START = re.compile(r"^(?P<name>\w+)\((?P<args>.*)$")
_RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>(?P<rest>.*)$")


@dataclass(frozen=True)
class Syscall:
    index: int
    pid: int
    name: str
    text: str      # arguments and result as printed
    ok: bool       # returned without error


def completed_calls(text: str) -> list[Syscall]:
    pending: dict[int, tuple[str, str]] = {}
    calls: list[Syscall] = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        pid, body = int(match["pid"]), match["body"]
        resumed = _RESUMED.match(body)
        if resumed:
            name, start = pending.pop(pid, (resumed["name"], ""))
            full = start + resumed["rest"]
        else:
            started = _START.match(body)
            if not started:
                continue
            if body.endswith("<unfinished ...>"):
                # strace ends the first half with a space: "fsync(3</d> <unfinished ...>"
                pending[pid] = (started["name"],
                                started["args"][: -len("<unfinished ...>")].rstrip())
                continue
            name, full = started["name"], started["args"]
        result = full.rsplit("=", 1)[-1].strip()
        calls.append(Syscall(len(calls), pid, name, full, not result.startswith("-")))
    return calls
