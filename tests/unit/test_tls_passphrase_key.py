"""A key.pem under a passphrase does not load, and nothing asks for the passphrase: OpenSSL
asks on the controlling terminal when no password is given, and `mailmoat run` in a terminal
froze there, deaf to Ctrl-C, when such a key was copied into tls/ (review17b B1). The load
runs in a child whose controlling terminal is a pty, as under `mailmoat run`."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from shared.tls import PASSPHRASE_REFUSED, make_self_signed

REPOSITORY = Path(__file__).resolve().parents[2]


def _child_output(script: str, seconds: float = 20.0) -> str:
    pid, fd = pty.fork()
    if pid == 0:        # the child: the pty is its controlling terminal
        os.chdir(REPOSITORY)
        os.execv(sys.executable, [sys.executable, "-c", script])
    out, deadline = b"", time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:         # the child ended: the pty is closed
                    break
                if not chunk:
                    break
                out += chunk
                if b"pass phrase" in out:
                    break
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
    return out.decode(errors="replace")


def test_a_key_under_a_passphrase_is_refused_without_asking(tmp_path):
    key_pem, cert_pem = make_self_signed("mail.passphrase.test")
    key = serialization.load_pem_private_key(key_pem, password=None)
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    output = _child_output(
        "import ssl\n"
        "from shared.tls import server_context\n"
        f"try:\n    server_context({str(tmp_path / 'cert.pem')!r}, {str(tmp_path / 'key.pem')!r})\n"
        "except ssl.SSLError as exc:\n    print('refused:', exc)\n")
    assert "pass phrase" not in output
    assert f"refused: ('{PASSPHRASE_REFUSED}',)" in output
