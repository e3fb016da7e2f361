"""`mailmoat init` on a restored home whose tls/ holds key.pem or cert.pem alone (the backup
tester's defect 3): init used to make a new self-signed pair over the file that was there,
keeping no copy, so a restored private key that a CA had certified was gone for good. Now it
leaves tls/ as it is, does the rest of its work, and exits 1 saying what is missing."""

import hashlib
import os
import shutil
import subprocess
import sys

import pytest
from cryptography import x509

_SCRIPT = shutil.which("mailmoat", path=os.path.dirname(sys.executable))
MAILMOAT = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "shared.cli"]


def mailmoat(*args):
    environ = {k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"}
    result = subprocess.run([*MAILMOAT, *map(str, args)], capture_output=True, text=True,
                            env=environ, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    home = tmp_path_factory.mktemp("template") / "home"
    assert mailmoat("init", "--home", home, "--admin-password", "Admin-Pass-1").returncode == 0
    return home


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kept, removed", [("key.pem", "cert.pem"), ("cert.pem", "key.pem")])
def test_init_leaves_a_lone_key_or_certificate_alone_and_says_what_is_missing(
        template, tmp_path, kept, removed):
    home = tmp_path / "restored"
    shutil.copytree(template, home)
    shutil.rmtree(home / "run")  # as a backup leaves it out
    (home / "tls" / removed).unlink()
    before = digest(home / "tls" / kept)

    result = mailmoat("init", "--home", home)

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert sorted(os.listdir(home / "tls")) == [kept]  # nothing made, nothing set aside
    assert digest(home / "tls" / kept) == before
    assert "Self-signed TLS certificate" not in result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"mailmoat: {removed} is missing: {home / 'tls'} holds {kept} "
                           "alone")
    assert "Troubleshooting" in line
    # the rest of init's work was done
    assert "already initialised" in result.stdout and (home / "run").is_dir()


def test_init_with_a_dangling_link_makes_no_pair_over_it(template, tmp_path):
    home = tmp_path / "restored"
    shutil.copytree(template, home)
    for name in ("key.pem", "cert.pem"):
        (home / "tls" / name).unlink()
    (home / "tls" / "key.pem").symlink_to("/nonexistent/corporate/key.pem")

    result = mailmoat("init", "--home", home)

    assert result.returncode == 1
    assert (home / "tls" / "key.pem").is_symlink() and not (home / "tls" / "cert.pem").exists()
    assert result.stderr.startswith("mailmoat: cert.pem is missing:")


def test_init_makes_a_pair_when_tls_holds_neither(template, tmp_path):
    home = tmp_path / "restored"
    shutil.copytree(template, home)
    for name in ("key.pem", "cert.pem"):
        (home / "tls" / name).unlink()

    result = mailmoat("init", "--home", home)

    assert result.returncode == 0, result.stderr
    assert f"Self-signed TLS certificate: {home / 'tls' / 'cert.pem'}" in result.stdout
    x509.load_pem_x509_certificate((home / "tls" / "cert.pem").read_bytes())
    assert (home / "tls" / "key.pem").exists()
