"""A private, offline SpamAssassin for comparisons (bench/antispam_eval.py, bench/spam_bench.py,
tests/integration/test_antispam_quality.py).

What it owns
    `LocalSpamAssassin(workdir)` — Debian's SpamAssassin with its own site config, Bayes
    database and home directory under `workdir`: network tests off (`-L`, no DNS, no Razor,
    Pyzor or DCC, no auto-learn, no sa-update), spamd listening on 127.0.0.1 only.
    `learn(spam_paths, ham_paths)` trains its Bayes with sa-learn; `start()` / `stop()` run
    spamd; `check(path)` asks spamc and returns (score, is_spam).

Never: reach the network, read or write the system's SpamAssassin state, or leave spamd
running (use it as a context manager).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.processes import stop_process

__all__ = ["LocalSpamAssassin", "available"]

SYSTEM_SITE = "/etc/spamassassin"

LOCAL_CF = """\
# Written by bench/sa_local.py: offline SpamAssassin with Bayes, for comparisons only.
use_bayes 1
bayes_auto_learn 0
bayes_auto_expire 0
bayes_path {bayes}/bayes
bayes_file_mode 0777
lock_method flock
skip_rbl_checks 1
dns_available no
use_razor2 0
use_pyzor 0
use_dcc 0
use_auto_whitelist 0
required_score 5.0
"""


def available() -> bool:
    return all(shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}")
               for tool in ("spamassassin", "sa-learn", "spamd", "spamc"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalSpamAssassin:
    def __init__(self, workdir: Path, *, children: int = 1):
        self.workdir = Path(workdir)
        self.site = self.workdir / "site"
        self.bayes = self.workdir / "bayes"
        self.home = self.workdir / "home"
        self.children = children
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        for folder in (self.site, self.bayes, self.home):
            folder.mkdir(parents=True, exist_ok=True)
        # the plugin loaders of the system's site config (Bayes is a plugin), not its local.cf
        for pre in Path(SYSTEM_SITE).glob("*.pre"):
            shutil.copy(pre, self.site / pre.name)
        (self.site / "local.cf").write_text(LOCAL_CF.format(bayes=self.bayes))
        # spamd drops root privileges: let its user reach the private directories
        self.user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        for folder in (self.workdir, self.site, self.bayes, self.home):
            folder.chmod(0o777 if folder == self.bayes else 0o755)

    def _common(self) -> list[str]:
        return ["--siteconfigpath", str(self.site)]

    def learn(self, spam: list[Path], ham: list[Path]) -> None:
        """Train the Bayes database (sa-learn --spam / --ham, local only)."""
        for flag, paths in (("--spam", spam), ("--ham", ham)):
            listing = self.workdir / f"learn{flag}.txt"
            listing.write_text("".join(f"{p}\n" for p in paths))
            subprocess.run(["sa-learn", "-L", *self._common(), "--dbpath", str(self.bayes),
                            "--no-sync", flag, "-f", str(listing)],
                           check=True, stdout=subprocess.DEVNULL, env=self._env())
        subprocess.run(["sa-learn", "-L", *self._common(), "--dbpath", str(self.bayes),
                        "--sync"], check=True, stdout=subprocess.DEVNULL, env=self._env())
        for path in self.bayes.iterdir():
            path.chmod(0o666)

    def _env(self) -> dict:
        return {**os.environ, "HOME": str(self.home)}

    def start(self, timeout_seconds: float = 120) -> None:
        self.port = _free_port()
        spamd = shutil.which("spamd") or "/usr/sbin/spamd"
        self.process = subprocess.Popen(
            [spamd, "-L", "-x", "--siteconfigpath", str(self.site), "-H", str(self.home),
             "-u", self.user, "--listen", f"127.0.0.1:{self.port}",
             "--allowed-ips", "127.0.0.1", "--max-children", str(self.children),
             "--min-children", str(self.children), "--pidfile", str(self.workdir / "spamd.pid")],
            stdout=subprocess.DEVNULL, stderr=open(self.workdir / "spamd.log", "wb"),
            env=self._env())
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("spamd exited: "
                                   + (self.workdir / "spamd.log").read_text()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                result = subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(self.port),
                                         "-c"], input=b"Subject: ping\n\nping\n",
                                        capture_output=True, timeout=60)
                score, _, threshold = result.stdout.decode().strip().partition("/")
                if threshold and float(threshold) > 0:
                    return
                if threshold:     # "0/0": spamd answers but cannot scan (rules not loaded)
                    raise RuntimeError("spamd cannot scan: "
                                       + (self.workdir / "spamd.log").read_text()[-2000:])
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("spamd did not start in time")

    def check(self, path: Path) -> tuple[float, bool]:
        """(score, is_spam) from spamd through spamc -c."""
        with open(path, "rb") as handle:
            result = subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(self.port), "-c",
                                     "-s", str(64 * 1024 * 1024)], stdin=handle,
                                    capture_output=True, timeout=120)
        text = result.stdout.decode().strip()
        score, _, threshold = text.partition("/")
        if not threshold or float(threshold) <= 0:
            raise RuntimeError(f"spamc failed for {path}: {text or result.stderr.decode()[:200]}")
        return float(score), float(score) >= float(threshold)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None

    def __enter__(self) -> LocalSpamAssassin:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
