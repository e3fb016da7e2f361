"""The engines a worker process scans with (ARCHITECTURE invariant 2: scanning runs in the
pipeline's worker processes).

The core passes, inside the settings snapshot, the directory of the current virus
definitions (`RUNTIME_DEFINITIONS`, set by core/scan/service.py from the data home's
`definitions/virus/current`); a worker builds the builtin engine for that directory once
and keeps it until the directory changes. Version directories are immutable (shared/
definitions.py rule 2), so the directory path is the version: a new current version is
used from the next message on, and a message already being scanned finishes with the
engine it started with. Without the key (unit tests, a pipeline without the antivirus
service) the definitions shipped in the package are used. The core names only a directory
its own check loaded (shared/definitions.py `in_force`); one that no longer holds a readable
signature raises DefinitionsUnusable here (builtin.py rule 3), so the message gets a
scan_error finding instead of a scan with no signatures.

The worker adds, per message, the time.monotonic() by which its scans must have ended
(`RUNTIME_SCAN_DEADLINE`, set by core/pipeline/run.py inside the worker's time limit);
the clamd engine of that message stops there (clamd.py rule 1), so all its parts share one
budget. The builtin engine scans in this process and needs none: its time is the worker's.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from core.scan.builtin import BuiltinEngine
from core.scan.clamd import ClamdEngine

__all__ = ["RUNTIME_DEFINITIONS", "RUNTIME_SCAN_DEADLINE", "engines_for", "builtin_for",
           "clear_cache"]

RUNTIME_DEFINITIONS = "runtime.av.definitions"   # not a setting: the core adds it per message
RUNTIME_SCAN_DEADLINE = "runtime.scan.deadline"  # not a setting: the worker adds it per message
_lock = threading.Lock()
_cache: dict[str, BuiltinEngine] = {}


def definitions_dir(settings: Mapping) -> str:
    path = settings.get(RUNTIME_DEFINITIONS)
    if path:
        return str(path)
    from shared.definitions import baseline
    base = baseline("virus")
    if base is None:
        raise RuntimeError("no virus definitions shipped with this installation")
    return str(base.path)


def builtin_for(path: str) -> BuiltinEngine:
    with _lock:
        engine = _cache.get(path)
        if engine is None:
            engine = BuiltinEngine.from_directory(path, label=path)
            _cache.clear()                  # one version per worker: the current one
            _cache[path] = engine
        return engine


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def engines_for(settings: Mapping) -> list:
    """The engines of av.engine, in scan order (builtin first for "both")."""
    choice = settings["av.engine"]
    out = []
    if choice in ("builtin", "both"):
        out.append(builtin_for(definitions_dir(settings)))
    if choice in ("clamd", "both"):
        out.append(ClamdEngine(settings["av.clamd.address"],
                               deadline=settings.get(RUNTIME_SCAN_DEADLINE)))
    return out
