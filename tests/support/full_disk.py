"""A real `mailmoat core` whose data home fills up: run inside a mount namespace of its own.

    unshare --user --map-root-user --mount python -m tests.support.full_disk MOUNT_POINT OUT

mounts a small tmpfs at MOUNT_POINT (seen by this process and its children only), makes a
home on it routed to a loopback sink, starts the core, fills the disk to the last byte and
writes what it saw to OUT as JSON for tests/integration/test_full_disk.py to judge. Nothing
here asserts: the test does, on the facts.
"""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import time
from pathlib import Path

from core.smtp.server import DISK_CHECK_SECONDS
from shared.events import Action
from tests.support.core import CoreProcess, make_home
from tests.support.sink import Sink
from tests.support.waiting import events_of, wait_for

DISK_OCTETS = 24 * 1024 * 1024
RETRY_SECONDS = 4   # the deferred message's next attempt comes this long after its first


def _send(port: int, n: int, *, body_octets: int = 0, declare: int | None = None) -> str:
    """The reply to message *n* (with a body of about `body_octets`, and MAIL's SIZE=
    `declare` if given): "250", or the code and text of the refusal."""
    message = f"From: a@client.test\r\nTo: user@local.test\r\nSubject: full disk {n}\r\n\r\n" \
              f"message {n}\r\n" + ("x" * 998 + "\r\n") * (body_octets // 1000)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            # not sendmail(): it would declare the size itself
            client.ehlo()
            options = [f"SIZE={declare}"] if declare is not None else []
            for step in (lambda: client.mail("a@client.test", options),
                         lambda: client.rcpt("user@local.test"),
                         lambda: client.data(message.encode())):
                reply = step()
                if reply[0] >= 400:
                    return f"{reply[0]} {reply[1].decode()}"
        return "250"
    except smtplib.SMTPResponseException as exc:
        return f"{exc.smtp_code} {exc.smtp_error.decode()}"
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return f"{code} {text.decode()}"


def _fill(path: Path) -> None:
    """Write zeros to *path* until the file system has no block left."""
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as handle:
        while True:
            try:
                handle.write(block)
            except OSError:
                break
        while True:                 # the last partial block
            try:
                handle.write(b"\0" * 512)
            except OSError:
                return


def fill_to(mount_point: Path, free_fraction: float) -> None:
    """Write zeros to mount_point/filler until the file system has `free_fraction` free."""
    with open(mount_point / "filler", "wb") as handle:      # emptied first
        st = os.statvfs(mount_point)
        octets = (st.f_bavail - int(st.f_blocks * free_fraction)) * st.f_frsize
        while octets > 0:
            chunk = min(octets, 1 << 20)
            handle.write(b"\0" * chunk)
            octets -= chunk


def _delivered(sink: Sink, n: int, timeout: float) -> int:
    """How many messages the sink holds once it has *n*, or when *timeout* has passed."""
    wait_for(lambda: len(sink.messages) >= n, timeout)
    return len(sink.messages)


def scenario(mount_point: Path) -> dict:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_OCTETS}", "tmpfs",
                    str(mount_point)], check=True)
    facts: dict = {}
    filler = mount_point / "filler"
    with Sink() as sink:
        home = make_home(mount_point / "home", routing__local=[
            {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}],
            delivery__retry_initial_seconds=RETRY_SECONDS,
            delivery__retry_max_seconds=RETRY_SECONDS)
        core = CoreProcess(home)
        with core:
            port = core.smtp_port
            facts["before"] = _send(port, 1)
            facts["delivered_before"] = _delivered(sink, 1, 20)
            sink.tempfail_all = True
            facts["to_defer"] = _send(port, 2)
            facts["deferred"] = wait_for(lambda: events_of(home, Action.DEFERRED), 20)
            sink.tempfail_all = False
            _fill(filler)
            facts["free_octets"] = os.statvfs(mount_point).f_bavail \
                * os.statvfs(mount_point).f_frsize
            facts["while_full"] = _send(port, 3)
            cli = subprocess.run([sys.executable, "-m", "shared.cli", "config", "set", "--home",
                                  str(home.root), "logging.retention_days", "20"],
                                 capture_output=True, text=True)
            facts["config_set"] = {"status": cli.returncode, "stderr": cli.stderr}
            # Its next attempt comes while the disk is full: delivering is what frees space.
            facts["delivered_while_full"] = _delivered(sink, 2, RETRY_SECONDS + 30)
            facts["core_running_while_full"] = core.process.poll() is None
            filler.unlink()
            facts["after"] = _send(port, 4)
            facts["delivered_after"] = _delivered(sink, 3, 30)
            facts["core_running_after"] = core.process.poll() is None
            # 8 % free (about 1.9 MB): a message that would leave under 5 % is refused, at
            # MAIL by its declared SIZE, after DATA by its size (streamed into the spool: over
            # 256 KiB); a small one still passes.
            fill_to(mount_point, 0.08)
            time.sleep(DISK_CHECK_SECONDS + 0.1)    # the listener looks at the disk that often
            facts["declared_too_big"] = _send(port, 10, declare=1_500_000)
            facts["streamed_too_big"] = _send(port, 11, body_octets=1_500_000)
            facts["small_declared"] = _send(port, 12, body_octets=20_000, declare=30_000)
            # more than the disk holds, undeclared: the disk fills while it is streamed
            facts["streamed_past_the_disk"] = _send(port, 15, body_octets=3_000_000)
            # 5 % and 100 kB free: 200 kB (kept in memory until it is written) would leave
            # under 5 %; 20 kB would not.
            fill_to(mount_point, 0.05 + 100_000 / DISK_OCTETS)
            time.sleep(DISK_CHECK_SECONDS + 0.1)
            facts["buffered_too_big"] = _send(port, 13, body_octets=200_000)
            facts["small"] = _send(port, 14, body_octets=20_000)
            facts["delivered_small"] = _delivered(sink, 5, 30)
        facts["core_exit"] = core.process.returncode
        facts["log"] = (home.root / "core-test.log").read_text(errors="replace")[-3000:]
        facts["events"] = {action: len(events_of(home, action)) for action in (
            Action.DELIVERED, Action.REJECTED, Action.SERVICE_STOPPED)}
        facts["rejected"] = [dict(row) for row in events_of(home, Action.REJECTED)]
    return facts


if __name__ == "__main__":
    result = scenario(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(result, default=str))
