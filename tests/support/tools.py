"""External programs some tests drive (strace, swaks, smtp-source, chromium).

Where a tool is missing a test skips with the reason — except under CI
(MAILMOAT_REQUIRE_TOOLS=1, set by .ci/run after installing them), where a missing tool is a
failure, so a broken install can never pass as a skip.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["require_tool"]


def require_tool(name: str, package: str | None = None) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}")
                                  else None)
    if path:
        return path
    reason = f"{name} not installed (Debian package {package or name}; .ci/run installs it)"
    if os.environ.get("MAILMOAT_REQUIRE_TOOLS"):
        pytest.fail(reason)
    pytest.skip(reason)
