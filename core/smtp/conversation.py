"""SMTP conversation logs (SPEC §3 "Diagnostics"; guide §3 "Configuring … SMTP conversation
logging"): one file per inbound connection or outbound attempt in the diagnostics directory.

`diagnostics.conversation.inbound|outbound`: off | on_error | all. With on_error the log is
kept only when an error of the class chosen by `diagnostics.conversation.errors` happened
(all | communication | protocol | local | unsupported). `diagnostics.conversation.data`:
ignore (message content left out), summarize (one line with its size) or echo (the content).
The log is collected in memory up to MAX_LOG_OCTETS and written once, through a worker thread,
when the conversation ends — nothing here blocks the session.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Mapping

import trio

__all__ = ["ConversationLog", "MAX_LOG_OCTETS"]

MAX_LOG_OCTETS = 1 << 20  # a log is diagnostics, not an archive: cap it per conversation
_AUTH_LINE = re.compile(rb"^(AUTH\s+\S+)\s+.*$", re.IGNORECASE)


class ConversationLog:
    def __init__(self, settings: Mapping, direction: str, connection_id: str, peer: str):
        self.mode = settings[f"diagnostics.conversation.{direction}"]
        self.error_class = settings["diagnostics.conversation.errors"]
        self.data_mode = settings["diagnostics.conversation.data"]
        self.direction = direction
        self.connection_id = connection_id
        self.peer = peer
        self.lines: list[bytes] = []
        self.size = 0
        self.errors: list[tuple[str, str]] = []
        self.data_octets = 0
        self._truncated = False

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def _add(self, prefix: bytes, data: bytes) -> None:
        if not self.enabled or self._truncated:
            return
        for line in data.splitlines():
            line = _AUTH_LINE.sub(rb"\1 ****", line)  # secrets never reach a log
            entry = prefix + line
            self.size += len(entry) + 1
            if self.size > MAX_LOG_OCTETS:
                self.lines.append(b"... (log truncated)")
                self._truncated = True
                return
            self.lines.append(entry)

    def client(self, data: bytes, in_data: bool = False) -> None:
        if in_data:
            self.data_octets += len(data)
            if self.data_mode == "echo":
                self._add(b"C: ", data)
            return
        self._summarize()
        self._add(b"C: ", data)

    def server(self, data: bytes) -> None:
        self._summarize()
        self._add(b"S: ", data)

    def _summarize(self) -> None:
        if self.data_octets and self.data_mode == "summarize":
            self._add(b"C: ", f"<message data, {self.data_octets} octets>".encode())
        self.data_octets = 0

    def error(self, kind: str, detail: str) -> None:
        self.errors.append((kind, detail))
        self._add(b"!! ", f"{kind}: {detail}".encode("utf-8", "replace"))

    def should_keep(self) -> bool:
        if self.mode == "all":
            return True
        if self.mode == "on_error":
            return any(self.error_class in ("all", kind) for kind, _ in self.errors)
        return False

    async def close(self, directory: Path) -> None:
        if not self.should_keep():
            return
        await trio.to_thread.run_sync(self._write, Path(directory))

    def _write(self, directory: Path) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = directory / f"{self.direction}-{stamp}-{self.connection_id}.log"
        header = f"# {self.direction} conversation with {self.peer}\n".encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(header + b"\n".join(self.lines) + b"\n")
