"""The data-home layout (SPEC §1): where every file of a Mailmoat installation lives.

One `DataHome` value names every path; nothing else in the code joins path strings onto the
home. `create()` makes the tree (mode 0700: the data home is readable by the Mailmoat user
only) and is idempotent.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataHome", "default_home", "resolve_home", "SPOOL_QUEUES"]

# Queue directories under spool/ (SPEC §1; shared.spool owns what is inside them).
SPOOL_QUEUES = ("incoming", "fast", "slow", "hold", "quarantine/spam", "quarantine/virus",
                "corrupt")


def default_home() -> Path:
    """`/var/lib/mailmoat` for root, else `$XDG_DATA_HOME/mailmoat` (~/.local/share/mailmoat)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/mailmoat")
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(xdg) / "mailmoat"


def resolve_home(option: str | os.PathLike | None) -> "DataHome":
    """--home, else $MAILMOAT_HOME, else the per-user default."""
    chosen = option or os.environ.get("MAILMOAT_HOME") or default_home()
    return DataHome(Path(chosen).expanduser().resolve())


@dataclass(frozen=True)
class DataHome:
    root: Path

    @property
    def db(self) -> Path:
        return self.root / "mailmoat.db"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    def queue(self, name: str) -> Path:
        if name not in SPOOL_QUEUES:
            raise ValueError(f"unknown queue {name!r}")
        return self.spool / name

    @property
    def definitions(self) -> Path:
        return self.root / "definitions"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def diagnostics(self) -> Path:
        return self.root / "diagnostics"

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def tls_key(self) -> Path:
        return self.tls / "key.pem"

    @property
    def tls_cert(self) -> Path:
        return self.tls / "cert.pem"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def run(self) -> Path:
        """Process markers (clean-stop flags) of `mailmoat run`, core and console."""
        return self.root / "run"

    def directories(self) -> list[Path]:
        return [self.root, self.spool, *(self.queue(q) for q in SPOOL_QUEUES),
                self.definitions, self.logs, self.diagnostics, self.tls, self.tmp, self.run]

    def create(self) -> None:
        """Raises OSError naming the path (NotADirectoryError where a file stands in the
        way: `init --home FILE`, which mkdir calls "File exists")."""
        for directory in self.directories():
            try:
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            except FileExistsError:
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR),
                                         str(directory)) from None
        os.chmod(self.root, 0o700)

    def exists(self) -> bool:
        """Whether an initialised data home is here (its database is). Raises
        NotADirectoryError naming the home when a file stands where it, or a directory above
        it, should be: every command then says `cannot use PATH (Not a directory)`, as `init`
        does, not "no data home here; run `mailmoat init` first", which that init refuses
        (opsdocs20 C3)."""
        try:
            is_directory = stat.S_ISDIR(os.stat(self.root).st_mode)
        except FileNotFoundError:
            return False
        except NotADirectoryError:
            is_directory = False
        if not is_directory:
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(self.root))
        return self.db.exists()
