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
    <type>/current -> v<...>            symlink, switched atomically (symlink + rename)
    <type>/previous -> v<...>           the version current replaced, kept for rollback

Rules
    1. Nothing is installed before the whole package is verified: signature, then every
       file's size and hash, then the member list (no extra, missing, duplicate, non-flat or
       non-regular members). A refused package changes nothing on disk but a temp directory
       that is removed again.
    2. A version directory is written under a temporary name, fsync'd, then renamed into
       place; `current` is switched by renaming a new symlink over it. A reader sees the old
       version or the new one, never a mix. Only current and previous are kept.
    3. The definitions shipped inside the Python package (`shared/data/definitions/<type>/`)
       are the trusted baseline: they are part of the installed code, so they carry a
       manifest with hashes but no signature and no private key exists for them. They are in
       force while nothing newer has been installed into the data home.
    4. Installing a version that is not newer (version date, then revision) than the current
       one is refused unless `allow_older` (rollback is its own function).

Never: trust a package because of its file name or its manifest alone; write into an
installed version directory; follow a path from the package outside the temp directory.
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
           "generate_key", "manifest_for_dir"]

TYPES = ("virus", "spam")
FORMAT = 1
PACKAGE_SUFFIX = ".mmdef"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_PACKAGE_FILES = 256
MAX_FILE_OCTETS = 512 * 2**20          # one signature file; a bound, not a expectation
BASELINE_ROOT = Path(__file__).resolve().parent / "data" / "definitions"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class DefinitionsError(Exception):
    """A package or an install request was refused; the message says why (one line)."""


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
    except (tarfile.TarError, OSError) as exc:
        raise DefinitionsError(f"{path}: not a readable package ({exc})") from None
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
    base = _type_dir(Path(root), manifest.type)
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = current(root, manifest.type)
    # `now` is None for a type with neither an installed version nor a shipped baseline.
    if not allow_older and now is not None and now.source == "installed" \
            and manifest.key <= (now.version, now.revision):
        raise DefinitionsError(f"{manifest.label} is not newer than the current {now.label}")
    final = base / manifest.label
    if not final.exists():
        tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=base))
        try:
            _write_file(tmp / MANIFEST, manifest.to_installed_bytes())
            for name, data in members.items():
                _write_file(tmp / name, data)
            _fsync_dir(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    _make_current(base, manifest.label)
    return current(root, manifest.type)


def _make_current(base: Path, label: str) -> None:
    link = base / "current"
    old = os.readlink(link) if link.is_symlink() else None
    if old == label:
        return
    if old is not None:
        _switch(base / "previous", old)
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
    """Make the previous version current again (and the current one previous)."""
    base = _type_dir(Path(root), kind)
    previous = base / "previous"
    if not previous.is_symlink() or not (base / os.readlink(previous)).is_dir():
        raise DefinitionsError(f"no previous {kind} definitions to roll back to")
    _make_current(base, os.readlink(previous))
    return current(root, kind)


# --- reading ---------------------------------------------------------------------------------

def baseline(kind: str = "virus") -> Definitions | None:
    """The definitions shipped in the Python package (rule 3), checked against their own
    manifest's hashes; None when this type ships none."""
    path = BASELINE_ROOT / kind
    try:
        manifest = Manifest.parse((path / MANIFEST).read_bytes())
    except FileNotFoundError:
        return None
    for entry in manifest.files:
        data = (path / entry["name"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise DefinitionsError(f"shipped definitions damaged: {entry['name']}")
    return Definitions(kind, manifest.version, manifest.revision, path, "package")


def current(root: str | os.PathLike | None, kind: str = "virus") -> Definitions | None:
    """The version in force: the installed current one, else the shipped baseline."""
    if root is not None:
        link = _type_dir(Path(root), kind) / "current"
        try:
            target = link.resolve(strict=True)
            manifest = Manifest.parse((target / MANIFEST).read_bytes())
            return Definitions(kind, manifest.version, manifest.revision, target, "installed")
        except (FileNotFoundError, NotADirectoryError, DefinitionsError, OSError):
            pass
    return baseline(kind)


def installed_versions(root: str | os.PathLike, kind: str = "virus") -> dict[str, str | None]:
    """{"current": label, "previous": label} of what is installed (None when absent)."""
    base = _type_dir(Path(root), kind)
    out: dict[str, str | None] = {}
    for name in ("current", "previous"):
        link = base / name
        out[name] = os.readlink(link) if link.is_symlink() else None
    return out
