"""Definitions packages (SPEC §3 LiveUpdate "definitions"; guide §4 "Updating virus and spam
definitions files"): the package format, its signature, installing it into the data home and
which version is current.

Package format (`*.mmdef`, a plain POSIX tar, optionally gzip-compressed)
    manifest.json   {"format": 1, "type": "virus"|"spam", "version": "YYYY-MM-DD",
                     "revision": N, "created": "<ISO 8601>",
                     "files": [{"name": "mailmoat.ndb", "size": n, "sha256": "<hex>"}, ...]}
    manifest.sig    the detached Ed25519 signature (64 raw bytes) of manifest.json's exact bytes
    <files>         every file the manifest lists, flat (no directories), and nothing else

    The signature covers the manifest; the manifest covers every file by SHA-256 and size.
    A package is trusted when manifest.sig verifies under one of `definitions.trusted_keys`
    (base64 Ed25519 public keys, raw 32 bytes).

Install layout (under the data home's `definitions/`)
    <type>/v<version>-r<revision>/      an installed version: manifest.json + the files
    <type>/current -> v<...>            symlink, switched atomically (symlink + rename);
                                        absent: the shipped set is current
    <type>/previous -> v<...>           the version current replaced, kept for rollback;
                                        absent: current replaced the shipped set (or
                                        nothing is installed)

Rules
    1. Nothing is installed before the whole package is verified: signature, then every
       file's size and hash, then the member list (no extra, missing, duplicate, non-flat or
       non-regular members). A refused package changes nothing on disk but a temp directory
       that is removed again.
    2. A version directory is written under a temporary name, fsync'd, then renamed into
       place; `current` is switched by renaming a new symlink over it. A reader sees the old
       version or the new one, never a mix. Only current and previous are kept.
    3. The definitions shipped inside the Python package (BASELINE_DIRS: virus in
       `shared/data/definitions/virus/`, spam in `core/scan/antispam/data/spam/`) are the
       trusted baseline: they are part of the installed code, so they carry a manifest with
       hashes but no signature and no private key exists for them. They are in force while
       nothing usable is installed into the data home.
    4. Installing a version that is not newer (version date, then revision) than the current
       one — installed or shipped — is refused unless `allow_older` (rollback is its own
       function).
    5. A set is only made current (install, rollback) when the core can use it for its
       type: `check_set` verifies its files against its manifest and loads it with the
       core's own loader for the type (virus: core/scan/builtin.py `load_signatures`, at
       least one signature; spam: core/scan/antispam/definitions.py `load`). A signed
       package of the wrong type, or one whose rules or signatures do not load, is refused
       like a bad hash. The core runs the same check on what is installed (`in_force`), so
       a set damaged after install is reported as unusable and the shipped set scans; what
       the core reports is always what it scans with.
    6. Rollback swaps current and previous. When current replaced the shipped set (no
       previous), rollback removes current, so the shipped set is in force, and keeps the
       rolled-back version as previous: rolling back again makes it current again.

Never: trust a package because of its file name or its manifest alone; write into an
installed version directory; follow a path from the package outside the temp directory;
report a version as in use that the core's loader refused.

Layering: the loaders live in core/scan/ and are imported here only inside `check_set`, so
the console (which reads `current` and `installed_versions`) never imports the core.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

__all__ = ["DefinitionsError", "Manifest", "Definitions", "TYPES", "PACKAGE_SUFFIX",
           "build_package", "verify_package", "install_package", "rollback", "current",
           "baseline", "installed_versions", "load_private_key", "public_key_b64",
           "generate_key", "manifest_for_dir", "check_set", "previous_facts", "in_force",
           "describe",
           "BASELINE_DIRS"]

TYPES = ("virus", "spam")
FORMAT = 1
PACKAGE_SUFFIX = ".mmdef"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_PACKAGE_FILES = 256
MAX_FILE_OCTETS = 512 * 2**20          # one signature file; a bound, not a expectation
BASELINE_ROOT = Path(__file__).resolve().parent / "data" / "definitions"
# rule 3; the spam set ships beside its engine (core/scan/antispam/definitions.py
# PACKAGED_DIR, named here as a path so that reading it imports nothing from the core)
BASELINE_DIRS = {"virus": BASELINE_ROOT / "virus",
                 "spam": Path(__file__).resolve().parent.parent / "core" / "scan" / "antispam"
                 / "data" / "spam"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class DefinitionsError(Exception):
    """A package or an install request was refused; the message says why (one line).
    `manifest`: the package's, when install_package refused a package whose signature
    verified (not newer, not usable for its type), so the refusal can name the version;
    None before that."""

    manifest: "Manifest | None" = None


@dataclass(frozen=True)
class Manifest:
    type: str
    version: str
    revision: int
    files: tuple[dict, ...]
    created: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.version, self.revision)

    @property
    def label(self) -> str:
        return f"v{self.version}-r{self.revision}"

    def to_bytes(self) -> bytes:
        return (json.dumps({"format": FORMAT, "type": self.type, "version": self.version,
                            "revision": self.revision, "created": self.created,
                            "files": list(self.files)}, indent=1, sort_keys=True)
                + "\n").encode()

    def to_installed_bytes(self) -> bytes:
        """The manifest written into an installed version directory: files as
        {name: sha256} (the form core/scan/antispam/definitions.py also reads)."""
        return (json.dumps({"format": FORMAT, "type": self.type, "version": self.version,
                            "revision": self.revision, "created": self.created,
                            "files": {e["name"]: e["sha256"] for e in self.files}},
                           indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, raw: bytes) -> "Manifest":
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise DefinitionsError(f"manifest is not JSON: {exc}") from None
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise DefinitionsError("manifest: unknown format")
        kind, version, revision = obj.get("type"), obj.get("version"), obj.get("revision")
        if kind not in TYPES:
            raise DefinitionsError(f"manifest: type must be one of {', '.join(TYPES)}")
        if not isinstance(version, str) or not _VERSION_RE.match(version):
            raise DefinitionsError("manifest: version must be a date YYYY-MM-DD")
        try:
            dt.date.fromisoformat(version)
        except ValueError:
            raise DefinitionsError("manifest: version is not a valid date") from None
        if not isinstance(revision, int) or isinstance(revision, bool) or not 0 <= revision < 10**9:
            raise DefinitionsError("manifest: revision must be a whole number >= 0")
        files = obj.get("files")
        if isinstance(files, dict):       # the installed form: {name: sha256} (to_installed)
            files = [{"name": n, "sha256": h, "size": None} for n, h in files.items()]
        if not isinstance(files, list) or not files or len(files) > MAX_PACKAGE_FILES:
            raise DefinitionsError("manifest: files must list 1..256 files")
        seen = set()
        for entry in files:
            if not isinstance(entry, dict):
                raise DefinitionsError("manifest: bad file entry")
            name, size, digest = entry.get("name"), entry.get("size"), entry.get("sha256")
            if not isinstance(name, str) or not _NAME_RE.match(name) or name in (MANIFEST,
                                                                                 SIGNATURE):
                raise DefinitionsError(f"manifest: bad file name {name!r}")
            if name in seen:
                raise DefinitionsError(f"manifest: {name} listed twice")
            seen.add(name)
            if size is not None and (not isinstance(size, int) or isinstance(size, bool)
                                     or not 0 <= size <= MAX_FILE_OCTETS):
                raise DefinitionsError(f"manifest: bad size for {name}")
            if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise DefinitionsError(f"manifest: bad sha256 for {name}")
        return cls(kind, version, revision, tuple(files), str(obj.get("created") or ""))


@dataclass(frozen=True)
class Definitions:
    """One usable version: where its files are and what it is."""
    type: str
    version: str
    revision: int
    path: Path                  # directory holding manifest.json and the files
    source: str                 # "installed" | "package" (the shipped baseline)

    @property
    def label(self) -> str:
        return f"v{self.version}-r{self.revision}"

    def files(self, suffix: str | None = None) -> list[Path]:
        manifest = Manifest.parse((self.path / MANIFEST).read_bytes())
        out = [self.path / entry["name"] for entry in manifest.files]
        return [p for p in out if suffix is None or p.name.endswith(suffix)]

    def as_status(self) -> dict:
        return {"version": self.version, "revision": self.revision, "source": self.source}


def describe(facts: dict | None) -> str:
    """One line for the set in force, from `Definitions.as_status()` plus optional
    "previous" (a label), "previous_problem" (why a rollback would refuse it: review26d D3,
    the previous set was listed as if a rollback could go back to it) and "problem" (why the
    installed current set is not in force):
    "version 2026-11-28 revision 0 (shipped with Mailmoat)". The CLI's `definitions status`
    and the console's Status page both print it, so they say the same thing."""
    if not facts or facts.get("version") is None:
        text = "none"
    else:
        where = "shipped with Mailmoat" if facts.get("source") == "package" else "installed"
        if facts.get("previous"):
            where += f", previous {facts['previous']}"
            if facts.get("previous_problem"):
                where += f", which a rollback would refuse: {facts['previous_problem']}"
        text = f"version {facts['version']} revision {facts['revision']} ({where})"
    if facts and facts.get("problem"):
        text += f"; {facts['problem']}"
    return text


# --- keys ------------------------------------------------------------------------------------

def generate_key() -> tuple[bytes, str]:
    """(private key PEM, public key base64) of a new Ed25519 pair."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, public_key_b64(key)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """A PEM (PKCS#8) Ed25519 private key, or 32 raw bytes in base64."""
    data = Path(path).read_bytes()
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(data.strip(),
                                                                        validate=True))
    except (ValueError, TypeError) as exc:
        raise DefinitionsError(f"{path}: not an Ed25519 private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DefinitionsError(f"{path}: not an Ed25519 private key")
    return key


def _public_keys(trusted: Iterable[str]) -> list[Ed25519PublicKey]:
    keys = []
    for text in trusted:
        try:
            keys.append(Ed25519PublicKey.from_public_bytes(base64.b64decode(text)))
        except (ValueError, TypeError):
            continue                    # the settings schema validates these already
    return keys


# --- building --------------------------------------------------------------------------------

def manifest_for_dir(src: Path, kind: str, version: str, revision: int) -> Manifest:
    files = []
    for path in sorted(Path(src).iterdir()):
        if path.name in (MANIFEST, SIGNATURE) or path.name.startswith("."):
            continue
        if not path.is_file():
            raise DefinitionsError(f"{path}: only plain files can go into a package")
        if not _NAME_RE.match(path.name):
            raise DefinitionsError(f"{path.name}: file names are letters, digits, . _ -")
        data = path.read_bytes()
        files.append({"name": path.name, "size": len(data),
                      "sha256": hashlib.sha256(data).hexdigest()})
    if not files:
        raise DefinitionsError(f"{src}: no files to package")
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    manifest = Manifest(kind, version, revision, tuple(files), created)
    Manifest.parse(manifest.to_bytes())         # the same checks install will make
    return manifest


def build_package(src: str | os.PathLike, key: Ed25519PrivateKey, out: str | os.PathLike, *,
                  kind: str = "virus", version: str | None = None,
                  revision: int = 1) -> Manifest:
    """Write a signed package of every file in directory `src` to `out`; returns its
    manifest. Raises DefinitionsError for a bad source."""
    src = Path(src)
    if not src.is_dir():
        raise DefinitionsError(f"{src}: not a directory")
    version = version or dt.date.today().isoformat()
    manifest = manifest_for_dir(src, kind, version, revision)
    raw = manifest.to_bytes()
    signature = key.sign(raw)
    tmp = Path(str(out) + ".tmp")
    with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST, raw)
        _add_bytes(tar, SIGNATURE, signature)
        for entry in manifest.files:
            _add_bytes(tar, entry["name"], (src / entry["name"]).read_bytes())
    os.replace(tmp, out)
    return manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


# --- verifying -------------------------------------------------------------------------------

def verify_package(path: str | os.PathLike, trusted_keys: Iterable[str]
                   ) -> tuple[Manifest, dict[str, bytes]]:
    """(manifest, {name: bytes}) of a package whose signature and hashes check out under one
    of `trusted_keys`; DefinitionsError otherwise (rule 1)."""
    keys = _public_keys(trusted_keys)
    if not keys:
        raise DefinitionsError("no trusted keys: set definitions.trusted_keys first")
    members = _read_members(Path(path))
    raw, signature = members.pop(MANIFEST, None), members.pop(SIGNATURE, None)
    if raw is None or signature is None:
        raise DefinitionsError("not a definitions package (manifest.json or manifest.sig "
                               "missing)")
    for key in keys:
        try:
            key.verify(signature, raw)
            break
        except InvalidSignature:
            continue
    else:
        raise DefinitionsError("signature does not verify with any trusted key")
    manifest = Manifest.parse(raw)
    _check_files(manifest, members)
    return manifest, members


def _check_files(manifest: Manifest, members: dict[str, bytes]) -> None:
    listed = {entry["name"] for entry in manifest.files}
    extra = sorted(set(members) - listed)
    if extra:
        raise DefinitionsError(f"file not in the manifest: {extra[0]}")
    for entry in manifest.files:
        data = members.get(entry["name"])
        if data is None:
            raise DefinitionsError(f"file missing from the package: {entry['name']}")
        if (entry["size"] is not None and len(data) != entry["size"]) or \
                hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise DefinitionsError(f"hash mismatch: {entry['name']} was altered")


def _read_members(path: Path) -> dict[str, bytes]:
    try:
        tar = tarfile.open(path, "r:*")
    except tarfile.ReadError:
        # its text lists every method tried, a line each (clispec19 C2): the reason is one
        raise DefinitionsError(f"{path}: not a definitions package (not a tar archive, "
                               "compressed or not)") from None
    except (tarfile.TarError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise DefinitionsError(f"{path}: not a readable package ({reason})") from None
    members: dict[str, bytes] = {}
    total = 0
    with tar:
        try:
            for info in tar:
                if len(members) > MAX_PACKAGE_FILES + 2:
                    raise DefinitionsError("package has too many members")
                if not info.isreg():
                    raise DefinitionsError(f"member {info.name!r} is not a plain file")
                name = info.name
                if not _NAME_RE.match(name):
                    raise DefinitionsError(f"member {name!r}: only flat file names allowed")
                if name in members:
                    raise DefinitionsError(f"member {name!r} appears twice")
                if info.size > MAX_FILE_OCTETS:
                    raise DefinitionsError(f"member {name!r} too large")
                total += info.size
                handle = tar.extractfile(info)
                members[name] = handle.read() if handle else b""
        except (tarfile.TarError, EOFError, OSError, Exception) as exc:
            if isinstance(exc, DefinitionsError):
                raise
            raise DefinitionsError(f"{path}: damaged package ({type(exc).__name__})") from None
    return members


# --- installing ------------------------------------------------------------------------------

def _type_dir(root: Path, kind: str) -> Path:
    if kind not in TYPES:
        raise DefinitionsError(f"unknown definitions type {kind!r}")
    return Path(root) / kind


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _switch(link: Path, target: str) -> None:
    """Point symlink `link` at `target` atomically (rule 2)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def install_package(path: str | os.PathLike, root: str | os.PathLike,
                    trusted_keys: Iterable[str], *, allow_older: bool = False) -> Definitions:
    """Verify and install a package into definitions root `root` (the data home's
    `definitions/`); make it current, keep the one it replaces as previous. Returns the new
    current Definitions; DefinitionsError when refused (nothing changed)."""
    manifest, members = verify_package(path, trusted_keys)
    try:
        return _install(manifest, members, Path(root), allow_older)
    except DefinitionsError as exc:
        exc.manifest = manifest
        raise


def _install(manifest: Manifest, members: dict[str, bytes], root: Path,
             allow_older: bool) -> Definitions:
    base = _type_dir(root, manifest.type)
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = current(root, manifest.type)
    # `now` is None for a type with neither an installed version nor a shipped baseline; the
    # shipped set counts like an installed one (rule 4): a stale package must not replace
    # newer definitions that came with an upgrade of Mailmoat.
    if not allow_older and now is not None and manifest.key <= (now.version, now.revision):
        raise DefinitionsError(f"{manifest.label} is not newer than the current {now.label}")
    final = base / manifest.label
    if not final.exists():
        tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=base))
        try:
            _write_file(tmp / MANIFEST, manifest.to_installed_bytes())
            for name, data in members.items():
                _write_file(tmp / name, data)
            _fsync_dir(tmp)
            _check_unpacked(manifest, tmp)                  # rule 5
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    else:
        _check_unpacked(manifest, final)
    _make_current(base, manifest.label)
    return current(root, manifest.type)


def _check_unpacked(manifest: Manifest, directory: Path) -> None:
    try:
        check_set(manifest.type, directory)
    except DefinitionsError as exc:
        raise DefinitionsError(f"{manifest.type} definitions {manifest.label} cannot be "
                               f"used: {exc}") from None


def _make_current(base: Path, label: str) -> None:
    """Point current at `label`; previous keeps what current replaced, and is removed when
    that was the shipped set (rule 6)."""
    link = base / "current"
    old = os.readlink(link) if link.is_symlink() else None
    if old == label:
        return
    if old is not None:
        _switch(base / "previous", old)
    else:
        (base / "previous").unlink(missing_ok=True)     # it replaces the shipped set
    _switch(link, label)
    _fsync_dir(base)
    _prune(base)


def _prune(base: Path) -> None:
    keep = {os.readlink(base / name) for name in ("current", "previous")
            if (base / name).is_symlink()}
    for entry in base.iterdir():
        if entry.is_symlink() or entry.name in keep:
            continue
        if entry.is_dir() and (entry.name.startswith("v") or entry.name.startswith(".install-")):
            shutil.rmtree(entry, ignore_errors=True)


def rollback(root: str | os.PathLike, kind: str = "virus") -> Definitions:
    """Make the version current replaced current again (rule 6): swap current and previous;
    back to the shipped set when current replaced it. Returns the Definitions now current;
    DefinitionsError (nothing changed) when there is nothing to roll back or the previous
    version cannot be used (rule 5)."""
    base = _type_dir(Path(root), kind)
    links = installed_versions(root, kind) if base.is_dir() else {"current": None,
                                                                  "previous": None}
    facts = previous_facts(root, kind)
    now, before = links["current"], facts.get("previous")
    if now is None and before is None:
        raise DefinitionsError(f"no {kind} definitions installed: the shipped set is in force, "
                               f"there is nothing to roll back")
    if before is None:                      # current replaced the shipped set
        if baseline(kind) is None:
            raise DefinitionsError(f"no previous {kind} definitions to roll back to")
        _switch(base / "previous", now)
        (base / "current").unlink()
        _fsync_dir(base)
        return current(root, kind)
    if facts.get("previous_problem"):
        raise DefinitionsError(f"previous {kind} definitions {before} cannot be used: "
                               f"{facts['previous_problem']}")
    if now is None:                         # back from the shipped set: previous again
        _switch(base / "current", before)
        (base / "previous").unlink()
        _fsync_dir(base)
    else:
        _make_current(base, before)
    return current(root, kind)


def previous_facts(root: str | os.PathLike, kind: str = "virus") -> dict:
    """{"previous": label} of the installed previous version a rollback would go back to,
    with "previous_problem" when it would refuse it (gone, or check_set's reason), for
    `describe` and `rollback`, one reading for both; {} when there is none (none installed,
    or previous is current: a roll back to the shipped set that was interrupted)."""
    base = _type_dir(Path(root), kind)
    if not base.is_dir():
        return {}
    links = installed_versions(root, kind)
    before = links["previous"]
    if before is None or before == links["current"]:
        return {}
    if not (base / before).is_dir():
        return {"previous": before, "previous_problem": "it is no longer there"}
    try:
        check_set(kind, base / before)
    except DefinitionsError as exc:
        return {"previous": before, "previous_problem": str(exc)}
    return {"previous": before}


# --- reading ---------------------------------------------------------------------------------

def baseline(kind: str = "virus") -> Definitions | None:
    """The definitions shipped in the Python package (rule 3), checked against their own
    manifest's hashes; None when this type ships none."""
    path = BASELINE_DIRS.get(kind)
    if path is None:
        raise DefinitionsError(f"unknown definitions type {kind!r}")
    try:
        raw = json.loads((path / MANIFEST).read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise DefinitionsError(f"shipped definitions: manifest is not JSON: {exc}") from None
    if isinstance(raw, dict):
        # the spam set's manifest is written by its training script without "format"
        raw.setdefault("format", FORMAT)
    manifest = Manifest.parse(json.dumps(raw).encode())
    if manifest.type != kind:
        raise DefinitionsError(f"shipped {kind} definitions: manifest says {manifest.type}")
    for entry in manifest.files:
        data = (path / entry["name"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise DefinitionsError(f"shipped definitions damaged: {entry['name']}")
    return Definitions(kind, manifest.version, manifest.revision, path, "package")


def current(root: str | os.PathLike | None, kind: str = "virus") -> Definitions | None:
    """The version made current: the installed current one (its manifest read, the set not
    loaded), else the shipped baseline. What the core scans with is `in_force` (rule 5)."""
    if root is not None:
        link = _type_dir(Path(root), kind) / "current"
        try:
            target = link.resolve(strict=True)
            manifest = Manifest.parse((target / MANIFEST).read_bytes())
            return Definitions(kind, manifest.version, manifest.revision, target, "installed")
        except (FileNotFoundError, NotADirectoryError, DefinitionsError, OSError):
            pass
    return baseline(kind)


def in_force(root: str | os.PathLike | None, kind: str = "virus"
             ) -> tuple[Definitions | None, str]:
    """(the set the core scans `kind` with, why that is not the installed current set):
    the installed current set when `check_set` accepts it, else the shipped baseline with
    the problem ("installed v2026-12-01-r1 cannot be used: rules.json: ..."), else None.
    The problem is "" when the installed set (or, with nothing installed, the shipped one)
    is in force. Never raises for what is on disk."""
    problem = ""
    if root is not None:
        link = _type_dir(Path(root), kind) / "current"
        if link.is_symlink():
            label = os.readlink(link)
            try:
                target = link.resolve(strict=True)
                manifest = check_set(kind, target)
                return Definitions(kind, manifest.version, manifest.revision, target,
                                   "installed"), ""
            except (OSError, DefinitionsError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                problem = f"installed {label} cannot be used: {why}"
    try:
        base = baseline(kind)
        if base is not None:
            check_set(kind, base.path, shipped=True)
    except (OSError, DefinitionsError) as exc:
        return None, "; ".join(p for p in (problem, f"shipped set cannot be used: {exc}") if p)
    return base, problem


def check_set(kind: str, directory: str | os.PathLike, *, shipped: bool = False) -> Manifest:
    """The manifest of the set in `directory` when the core can use it as `kind` definitions
    (rule 5): the manifest is of that type, every file it lists is there with its hash and
    (unless `shipped`: the baseline directory is laid out by packaging, not by install)
    nothing else is, and the core's loader for the type accepts the set. DefinitionsError
    names the file and the problem otherwise. The answer is cached per directory until an
    entry in it changes (the core asks twice a second)."""
    directory = Path(directory)
    try:
        stamp = tuple(sorted((e.name, st.st_mtime_ns, st.st_size, st.st_ino)
                             for e in os.scandir(directory) for st in (e.stat(),)))
    except OSError as exc:
        raise DefinitionsError(f"{directory.name}: {exc.strerror}") from None
    key = (kind, str(directory), shipped)
    hit = _checked.get(key)
    if hit is None or hit[0] != stamp:
        try:
            hit = (stamp, _check_set(kind, directory, shipped), None)
        except DefinitionsError as exc:
            hit = (stamp, None, str(exc))
        if len(_checked) >= 16:
            _checked.clear()
        _checked[key] = hit
    if hit[2] is not None:
        raise DefinitionsError(hit[2])
    return hit[1]


_checked: dict[tuple[str, str, bool], tuple[tuple, Manifest | None, str | None]] = {}


def _check_set(kind: str, directory: Path, shipped: bool) -> Manifest:
    try:
        raw = json.loads((directory / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise DefinitionsError(f"{MANIFEST}: missing") from None
    except (OSError, ValueError) as exc:
        raise DefinitionsError(f"{MANIFEST}: not readable ({exc})") from None
    if isinstance(raw, dict):
        raw.setdefault("format", FORMAT)            # the shipped spam manifest (baseline)
    try:
        manifest = Manifest.parse(json.dumps(raw).encode())
    except DefinitionsError as exc:
        raise DefinitionsError(f"{MANIFEST}: {exc}") from None
    if manifest.type != kind:
        raise DefinitionsError(f"{MANIFEST}: a {manifest.type} set, not {kind}")
    listed = {entry["name"] for entry in manifest.files}
    for entry in () if shipped else os.scandir(directory):
        if entry.name != MANIFEST and entry.name not in listed:
            raise DefinitionsError(f"{entry.name}: not in the manifest")
    for entry in manifest.files:
        try:
            data = (directory / entry["name"]).read_bytes()
        except OSError as exc:
            raise DefinitionsError(f"{entry['name']}: {exc.strerror}") from None
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise DefinitionsError(f"{entry['name']}: does not match its hash")
    _LOADERS[kind](directory)
    return manifest


def _load_virus(directory: Path) -> None:
    from core.scan.builtin import DefinitionsUnusable, load_signatures
    try:
        load_signatures(directory)
    except DefinitionsUnusable as exc:
        raise DefinitionsError(str(exc)) from None


def _load_spam(directory: Path) -> None:
    from core.scan.antispam import definitions as spam
    try:
        spam.load(directory)
    except spam.DefinitionsError as exc:
        raise DefinitionsError(str(exc)) from None


_LOADERS = {"virus": _load_virus, "spam": _load_spam}      # the core's loaders (rule 5)


def installed_versions(root: str | os.PathLike, kind: str = "virus") -> dict[str, str | None]:
    """{"current": label, "previous": label} of what is installed (None when absent)."""
    base = _type_dir(Path(root), kind)
    out: dict[str, str | None] = {}
    for name in ("current", "previous"):
        link = base / name
        out[name] = os.readlink(link) if link.is_symlink() else None
    return out
