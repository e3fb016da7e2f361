"""A real clamd for tests (issue 6): private config, database directory in tmp holding the
signature files the test gives it, TCP on 127.0.0.1 at a free port plus a unix socket in
tmp, foreground, no freshclam, nothing downloaded.

    with Clamd(tmp_path, [ndb_path, ...]) as clamd:
        ClamdEngine(clamd.address).scan(b"...")

`require_tool("clamd", "clamav-daemon")` skips locally when clamd is missing and fails under
CI (.ci/run installs clamav-daemon).

A test module that wants one clamd with the shipped signatures and a StreamMaxLength of its
own for all its tests takes `clamd = clamd_fixture(stream_max_mb=...)`; such a clamd refuses a
longer stream with STREAM_REFUSAL.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from shared.definitions import baseline
from tests.support.core import free_port
from tests.support.processes import stop_process
from tests.support.tools import require_tool

__all__ = ["Clamd", "free_port", "clamd_fixture", "STREAM_REFUSAL"]

START_SECONDS = 120.0
STREAM_REFUSAL = "INSTREAM size limit exceeded"     # clamd's reply past its StreamMaxLength


class Clamd:
    def __init__(self, root: Path, signature_files, *, stream_max_mb: int = 100):
        self.binary = require_tool("clamd", "clamav-daemon")
        self.root = Path(root) / "clamd"
        self.database = self.root / "db"
        self.database.mkdir(parents=True, exist_ok=True)
        for path in signature_files:
            shutil.copy(path, self.database / Path(path).name)
        self.port = free_port()
        self.socket_path = self.root / "clamd.sock"
        self.config = self.root / "clamd.conf"
        self.log = self.root / "clamd.log"
        self.config.write_text(
            f"DatabaseDirectory {self.database}\n"
            f"TCPSocket {self.port}\nTCPAddr 127.0.0.1\n"
            f"LocalSocket {self.socket_path}\n"
            "Foreground yes\n"
            f"LogFile {self.log}\nLogVerbose no\n"
            f"PidFile {self.root / 'clamd.pid'}\n"
            f"TemporaryDirectory {self.root}\n"
            f"StreamMaxLength {stream_max_mb}M\nMaxScanSize 400M\nMaxFileSize 200M\n"
            "MaxRecursion 20\n"
            "SelfCheck 0\n"                   # never reload (nor fetch) anything by itself
            "Bytecode no\n")
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Clamd":
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAM")}
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        env=env)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"clamd exited: {self.log.read_text()[-2000:] if self.log.exists() else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"zPING\0")
                    if s.recv(16).startswith(b"PONG"):
                        self._warm_up()
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("clamd did not start in time")

    def _warm_up(self) -> None:
        from core.scan.clamd import ClamdEngine
        ClamdEngine(self.address).scan(b"warm up")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, 20)
        self.process = None

    def __enter__(self) -> "Clamd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def clamd_fixture(stream_max_mb: int = 100):
    """A module-scoped pytest fixture: a Clamd with the shipped signatures (*.ndb) whose
    StreamMaxLength is `stream_max_mb` MiB. Assign it to the module's `clamd`."""
    @pytest.fixture(scope="module")
    def clamd(tmp_path_factory):
        with Clamd(tmp_path_factory.mktemp("clamd"), baseline("virus").path.glob("*.ndb"),
                   stream_max_mb=stream_max_mb) as server:
            yield server
    return clamd
