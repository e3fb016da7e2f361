"""Run a test scenario in Linux namespaces of its own, as a user (a mapped root): a mount
namespace to mount a small tmpfs (a disk that fills), a network namespace to give its
loopback device other hosts' addresses. The scenario is a module run as
`python -m module *args OUT`; it writes what it saw to OUT as JSON, and the test judges.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__ = ["in_own_mount", "in_own_namespaces"]

ROOT = Path(__file__).resolve().parents[2]


def in_own_mount(work: Path, module: str) -> dict:
    """Run `python -m module MOUNT_POINT OUT` in a user and mount namespace of its own
    (`unshare -rm`: it may mount a small tmpfs at MOUNT_POINT, as root or as a user) and
    return the JSON facts it wrote to OUT."""
    mount_point = work / "disk"
    mount_point.mkdir()
    return in_own_namespaces(work, module, "--mount", str(mount_point))


def in_own_namespaces(work: Path, module: str, namespace: str, *args: str) -> dict:
    """Run `python -m module *args OUT` in a user namespace (mapped root) and the
    `namespace` of its own (`--mount`, `--net`: unshare's options) and return the JSON
    facts it wrote to OUT."""
    from tests.support.tools import require_tool
    unshare = require_tool("unshare", "util-linux")
    out = work / "facts.json"
    run = subprocess.run([unshare, "--user", "--map-root-user", namespace, sys.executable,
                          "-m", module, *args, str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text())
