"""Container limits, counted per message and enforced while expanding (SPEC §3 container.*;
guide §6: "Each message is treated as a container … MIME headers are considered files").

`Budget` is charged by the decomposer as it goes; the first charge over a limit raises
`LimitExceeded`, which stops decomposition at once — nothing past the limit is read, so a
bomb is never expanded. The limits always apply (ARCHITECTURE invariant 3), whether or not
`container.enabled` asks for the message to be dropped (checks/container.py).

    files      every part after the message itself: MIME parts, archive/TNEF members
    depth      message = 0; each archive or attached message/rfc822 adds 1
    file       decoded size of one part
    total      decoded bytes of all parts together
    ratio      decoded / compressed size of one archive member or compressed stream,
               checked as bytes come out (the compressed size is known up front, so
               out_so_far / compressed is a lower bound of the final ratio); applied once a
               member is past RATIO_MIN_OCTETS, so ordinary small, very compressible files
               (a page of spaces) do not trip it
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Budget", "LimitExceeded", "RATIO_MIN_OCTETS", "MIB"]

MIB = 1 << 20
RATIO_MIN_OCTETS = 1 * MIB


class LimitExceeded(Exception):
    def __init__(self, limit: str, value: float, maximum: float, location: str):
        super().__init__(f"{limit}: {value} > {maximum} at {location}")
        self.limit, self.value, self.maximum, self.location = limit, value, maximum, location


@dataclass
class Budget:
    max_depth: int = 10
    max_files: int = 5000
    max_total_octets: int = 200 * MIB
    max_file_octets: int = 100 * MIB
    max_ratio: float = 100
    files: int = 0
    total_octets: int = 0

    @classmethod
    def from_settings(cls, settings) -> Budget:
        return cls(max_depth=settings["container.max_depth"],
                   max_files=settings["container.max_files"],
                   max_total_octets=settings["container.max_total_mb"] * MIB,
                   max_file_octets=settings["container.max_file_mb"] * MIB,
                   max_ratio=settings["container.max_ratio"])

    def add_file(self, location: str) -> None:
        self.files += 1
        if self.files > self.max_files:
            raise LimitExceeded("container.max_files", self.files, self.max_files, location)

    def check_depth(self, depth: int, location: str) -> None:
        if depth > self.max_depth:
            raise LimitExceeded("container.max_depth", depth, self.max_depth, location)

    def check_declared(self, size: int | None, compressed: int | None, location: str) -> None:
        """Refuse before reading when an archive's own header already says too much."""
        if size is None:
            return
        self.check_file(size, location)
        if self.total_octets + size > self.max_total_octets:
            raise LimitExceeded("container.max_total_mb", (self.total_octets + size) / MIB,
                                self.max_total_octets / MIB, location)
        if compressed is not None:
            self.check_ratio(size, compressed, location)

    def check_file(self, size: int, location: str) -> None:
        if size > self.max_file_octets:
            raise LimitExceeded("container.max_file_mb", size / MIB, self.max_file_octets / MIB,
                                location)

    def check_ratio(self, out_octets: int, in_octets: int, location: str) -> None:
        if out_octets < RATIO_MIN_OCTETS:
            return
        ratio = out_octets / max(in_octets, 1)
        if ratio > self.max_ratio:
            raise LimitExceeded("container.max_ratio", round(ratio, 1), self.max_ratio, location)

    def charge(self, octets: int, location: str) -> None:
        """Count `octets` more decoded bytes (call as they come out, chunk by chunk)."""
        if self.total_octets + octets > self.max_total_octets:
            raise LimitExceeded("container.max_total_mb", (self.total_octets + octets) / MIB,
                                self.max_total_octets / MIB, location)
        self.total_octets += octets

    def room(self, packed: int | None = None) -> int:
        """How many bytes one part may still take before a limit is hit (plus one, so that
        reading that many proves the limit); for a part decoded from `packed` compressed
        octets, at most one past what the ratio allows it (`check_ratio`)."""
        room = min(self.max_file_octets, self.max_total_octets - self.total_octets) + 1
        if packed is None:
            return room
        return min(room, max(RATIO_MIN_OCTETS, int(self.max_ratio * max(packed, 1))) + 1)
