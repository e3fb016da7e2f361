"""Definitions a test installs the way an administrator does (a signed package), and spam sets
built from the shipped one."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import definitions as defs


def install_signature(home, name: str, pattern: bytes) -> None:
    """Build a signed package of virus definitions holding one signature, `name` for
    `pattern` anywhere in a file (a ClamAV .ndb line; a name ending "@mm" is a mass mailer),
    and install it in `home` with its key trusted."""
    key = Ed25519PrivateKey.generate()
    source = home.root.parent / f"definitions-{pattern.hex()[:16]}"
    source.mkdir()
    (source / "mailmoat.ndb").write_text(f"{name}:0:*:{pattern.hex()}\n")
    package = source.with_suffix(".mmdef")
    defs.build_package(source, key, package, version="2026-12-01", revision=1)
    defs.install_package(package, home.definitions, [defs.public_key_b64(key)])


def packaged_spam_files() -> dict[str, bytes]:
    """The shipped spam set's data files by name (its manifest's list: rules.json,
    model.json.gz, and chars.npz when its scoring reads characters), for a test that builds
    a package from it."""
    import json
    from core.scan.antispam import definitions as spam
    manifest = json.loads((spam.PACKAGED_DIR / spam.MANIFEST_FILE).read_text())
    files = manifest["files"]
    names = files if isinstance(files, dict) else [e["name"] for e in files]
    return {name: (spam.PACKAGED_DIR / name).read_bytes() for name in names}


def packaged_spam_read(directory, windows):
    """A spam set in `directory` with the shipped set's rules, weights, bias and z90, read
    with `windows` (windows.Windows, or None for the plain sum): one model, another reading.
    Returns the loaded set."""
    import json
    from core.scan.antispam import definitions as spam
    packaged = spam.load(spam.PACKAGED_DIR)
    spam.write(directory, version="2030-01-02", revision=9, info={},
               rules_json=json.loads((spam.PACKAGED_DIR / spam.RULES_FILE).read_text()),
               bias=packaged.bias, weights=packaged.weights, z90=packaged.z90, windows=windows)
    return spam.load(directory)
