"""Test homes and core processes: a real data home in a temp folder, pinned to loopback.

Every home made here routes mail only to loopback sinks and asks only the loopback DNS server
it is given (or a closed loopback port): nothing a test does can leave the machine.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared import db
from shared.home import initialise, keep_space_reserve, space_reserve
from shared.paths import DataHome
from shared.settings import generated_values
from shared.settings_store import apply_changes
from tests.support.processes import stop_process

__all__ = ["free_port", "free_ports", "wait_port", "greets", "make_home", "copy_home",
           "set_settings", "CoreProcess", "ADMIN_PASSWORD", "DEAD_RESOLVER", "run_banner"]

ADMIN_PASSWORD = "Secret-Test-1"
DEAD_RESOLVER = "127.0.0.1:9"  # discard port: nothing answers, lookups time out locally


def free_port() -> int:
    return free_ports(1)[0]


# Ports are picked below the kernel's ephemeral range (net.ipv4.ip_local_port_range), which
# it never hands out for an outgoing connection or a bind to port 0: a port picked by binding
# port 0 and closed could be taken by another test's socket before the core bound it
# (EADDRINUSE at start; flakefix, session 22). Each xdist worker has a block of its own.
PORT_BLOCK = 1000
FIRST_PORT = 20000
_picked = 0


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _worker_block() -> range | None:
    """This process's ports (below the ephemeral range), or None when there is no room."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    start = FIRST_PORT + PORT_BLOCK * (int(worker) if worker.isdigit() else 0)
    return range(start, start + PORT_BLOCK) if start + PORT_BLOCK <= _ephemeral_start() else None


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports from this worker's block (the comment above), held
    open together while they are picked; ports the kernel picks when there is no block."""
    global _picked
    block = _worker_block()
    sockets = []
    try:
        if block is None:
            for _ in range(count):
                sockets.append(socket.socket())
                sockets[-1].bind(("127.0.0.1", 0))
        for _ in range(PORT_BLOCK if block is not None else 0):
            if len(sockets) == count:
                break
            port = block[_picked % PORT_BLOCK]
            _picked += 1
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))      # no SO_REUSEADDR: TIME_WAIT counts as used
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        if len(sockets) < count:
            raise RuntimeError(f"no {count} free ports in {block}")
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def routed_home(tmp_path, sink, **changes) -> DataHome:
    """`make_home` with the local domain local.test delivered to `sink` on loopback."""
    return make_home(tmp_path, routing__local=[
        {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}], **changes)


def wait_port(port: int, timeout: float = 30.0) -> None:
    """Return once something accepts connections on 127.0.0.1:port; TimeoutError if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def greets(host: str, port: int) -> bool:
    """Whether an SMTP listener at host:port answers a new connection with its 220."""
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            return sock.recv(512).startswith(b"220")
    except OSError:
        return False


def stored_settings(home: DataHome) -> dict:
    """The settings as stored in *home* (what a save really wrote)."""
    from shared.settings_store import load
    conn = db.connect(home.db)
    try:
        return load(conn)
    finally:
        conn.close()


def store_unchecked(home: DataHome, values: dict) -> None:
    """Write settings straight into the settings table, past today's validation, as an older
    release's `config set` wrote values it accepted and this one refuses."""
    conn = db.connect(home.db)
    try:
        with db.write_transaction(conn):
            for key, value in values.items():
                conn.execute("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                             (key, json.dumps(value), time.time()))
    finally:
        conn.close()


def set_settings(home: DataHome, **changes) -> None:
    """Apply settings through the shared store (validated), as the console and CLI do.
    Keyword names use `__` for dots: smtp__port=2525."""
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {k.replace("__", "."): v for k, v in changes.items()})
    finally:
        conn.close()


def listener_pids(home: DataHome) -> list[int]:
    """The live SMTP listener processes of this home (read from /proc)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"core.smtp.listener_main" in cmdline and str(home.root).encode() in cmdline:
            pids.append(int(pid))
    return pids


def make_home(root: Path, **changes) -> DataHome:
    home = DataHome(Path(root))
    _initialise(home)
    smtp_port, http_port, https_port = free_ports(3)
    base = {
        "smtp.port": smtp_port, "smtp.listen": ["127.0.0.1"], "smtp.hostname": "mailmoat.test",
        # In-process listener so tests can look at the server object; tests of the
        # listener processes set smtp.listener_processes themselves.
        "smtp.listener_processes": 1,
        "http.port": http_port, "https.port": https_port,
        "dns.resolvers": [DEAD_RESOLVER], "dns.timeout_seconds": 1,
        "delivery.retry_initial_seconds": 1, "delivery.retry_max_seconds": 2,
    }
    base.update({k.replace("__", "."): v for k, v in changes.items()})
    conn = db.connect(home.db)
    try:
        apply_changes(conn, base)
    finally:
        conn.close()
    return home


_template: list[DataHome] = []     # this process's initialised home, copied by _initialise


def _initialise(home: DataHome) -> None:
    """`initialise(home, ADMIN_PASSWORD)`, made cheap: where `home.root` is missing or empty, a
    copy of a home this process initialised once. Of an initialise's 0.27 s, the password's
    two scrypt hashes took 0.2 s and the self-signed key 0.06 s, in each of the ~900 homes of
    a run (tests/console/conftest.py copies its homes so too). As an initialise makes them:
    the same files and modes, written now (not the template's times); the generated values
    fresh (two homes never share a reinsertion key); the space reserve left to
    `keep_space_reserve`, which skips it on a disk without room for it. The homes of one
    process share the password's hash (of the same password) and the self-signed pair."""
    root = home.root
    if os.path.lexists(root) and (not root.is_dir() or any(root.iterdir())):
        initialise(home, ADMIN_PASSWORD)      # a re-initialise, or whatever stands in the way
        return
    if not _template:
        template = DataHome(Path(tempfile.mkdtemp(prefix="mailmoat-template-")) / "home")
        atexit.register(shutil.rmtree, template.root.parent, True)
        initialise(template, ADMIN_PASSWORD)
        _template.append(template)
    copy_home(_template[0], home)


def copy_home(template: DataHome, home: DataHome) -> DataHome:
    """`home` made a copy of the initialised `template`, as an initialise would have made it
    (`_initialise`): files written now, the generated values fresh, the space reserve kept by
    `keep_space_reserve`. Also the console tests' homes (tests/console/conftest.py)."""
    reserve = space_reserve(template)
    shutil.copytree(template.root, home.root, dirs_exist_ok=True, copy_function=shutil.copy,
                    ignore=lambda folder, names: [name for name in names
                                                  if Path(folder, name) == reserve])
    keep_space_reserve(home)
    conn = db.connect(home.db)
    try:
        apply_changes(conn, generated_values())
    finally:
        conn.close()
    return home


def run_banner(home: DataHome, prefix: list[str] | None = None) -> str:
    """`mailmoat run`'s output (run after `prefix`, e.g. setpriv's) up to its SMTP line;
    the run is then stopped."""
    run = subprocess.Popen([*(prefix or []), sys.executable, "-m", "shared.cli", "run",
                            "--home", str(home.root)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = run.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("SMTP:"):
                break
    finally:
        stop_process(run, 60)
        run.stdout.close()
    return "".join(lines)


class CoreProcess:
    """`mailmoat core` as a real child process."""

    def __init__(self, home: DataHome, *, prefix: list[str] | None = None, env=None):
        self.home = home
        self.prefix = prefix or []
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    @property
    def smtp_port(self) -> int:
        return stored_settings(self.home)["smtp.port"]

    def start(self, timeout: float = 60.0) -> "CoreProcess":
        command = [*self.prefix, sys.executable, "-m", "shared.cli", "core",
                   "--home", str(self.home.root)]
        self.log = open(self.home.root / "core-test.log", "ab")
        # Behind a prefix (strace) the child is the tracer, which on SIGTERM detaches and
        # leaves the core running: signal the whole process group instead.
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        env=self.env, start_new_session=bool(self.prefix))
        port = self.smtp_port
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"core exited with {self.process.returncode}: "
                                   + (self.home.root / "core-test.log").read_text()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        # not left running behind the failed test, its listener processes slowing the rest
        # of the run (flake20 F3)
        self.stop()
        raise TimeoutError("core did not start listening")

    def stop(self, timeout: float = 20.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self._signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            return self.process.wait()
        finally:
            if self.prefix:     # nothing of the group outlives the test
                self._wait_group(timeout)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self._signal(signal.SIGKILL)
            self.process.wait()

    def _wait_group(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.prefix:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass
        else:
            self.process.send_signal(signum)

    def __enter__(self):
        return self.start()

    def __exit__(self, *_exc):
        self.stop()
        self.log.close()
