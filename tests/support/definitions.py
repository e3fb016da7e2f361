"""Virus definitions a test installs the way an administrator does: a signed package."""

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
