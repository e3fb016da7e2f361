"""The command line run as root on the service user's data home, and ports below 1024 (docs
tester 14, B3).

`make run` as root creates the system user `mailmoat` and its home /var/lib/mailmoat, and the
CLI run as root uses that home by default. Regression tests for:
- `mailmoat definitions install` as root left root-owned files in the home: the core (as
  `mailmoat`) then crash-looped on "Permission denied", and a later install went silently
  unused. Now the CLI becomes the home's owner before it touches the home (shared.home.
  become_owner).
- `config set smtp.port 25` test-bound the port as the caller: accepted as root though the
  core runs as `mailmoat` and then crash-looped; refused as `mailmoat` even when the core has
  CAP_NET_BIND_SERVICE (systemd's AmbientCapabilities, as docs/operations.md recommends).
  Now the running core's status snapshot says what it may bind (shared.ports).

These tests make a throwaway system user and run real processes as it (runuser, and setpriv
for the ambient capability), so they need root; .ci/run runs as root.
"""

from __future__ import annotations

import json
import os
import pwd
import random
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import db
from shared import definitions as defs
from shared.ports import PRIVILEGED_RULE, privileged_port_start
from shared.status import read_snapshot
from tests.support.core import DEAD_RESOLVER, free_ports, wait_port
from tests.support.processes import stop_process

# several seconds per test: run by `make test-slow` (pyproject.toml, marker "slow")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: makes a throwaway system user and runs Mailmoat as "
                              "it (.ci/run runs as root)")]

ADMIN_PASSWORD = "Service-Pass-1"
EICAR_NDB = "Mailmoat.Test.EICAR:0:*:" + \
    b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*".hex() + "\n"


@pytest.fixture(scope="module")
def service_user():
    """A system user of its own, as `make run` makes `mailmoat`; removed afterwards."""
    if not (shutil.which("useradd") and shutil.which("runuser")):
        pytest.skip("needs useradd and runuser (Debian: passwd, util-linux)")
    name = f"mmtest{secrets.token_hex(4)}"
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                    "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                   check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def reachable_dir():
    """A directory the service user can reach (pytest's own are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="mailmoat-service-user-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _runs_mailmoat(user, interpreter: str) -> bool:
    probe = subprocess.run(["runuser", "-u", user.pw_name, "--", interpreter, "-c",
                            "import shared.cli, trio, flask, cryptography"],
                           capture_output=True, cwd="/")
    return probe.returncode == 0


@pytest.fixture(scope="module")
def python(service_user, reachable_dir) -> str:
    """An interpreter the service user can run with Mailmoat and its packages: this one, or,
    when it is out of the user's reach (pyenv under /root), what `make run` as root makes
    for the same reason (.venv-service): a venv of the system's Python of this version, here
    with this venv's packages and this checkout added to its path."""
    if _runs_mailmoat(service_user, sys.executable):
        return sys.executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for base in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if not os.access(base, os.X_OK):
            continue
        venv = reachable_dir / f"venv-{Path(base).parent.parent.name}"
        subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = venv / "lib" / f"python{version}" / "site-packages"
        (site / "mailmoat-test.pth").write_text(
            f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
        if _runs_mailmoat(service_user, str(venv / "bin" / "python")):
            return str(venv / "bin" / "python")
    pytest.skip(f"no Python {version} that {service_user.pw_name} can run with Mailmoat's "
                f"packages ({sys.executable} is out of its reach)")


def mailmoat(python: str, *args, user=None, expect=0, prefix=()) -> subprocess.CompletedProcess:
    """The CLI as a real process: as root, or as `user` (runuser), or behind `prefix`."""
    command = [*prefix, python, "-m", "shared.cli", *map(str, args)]
    if user is not None:
        command = ["runuser", "-u", user.pw_name, "--", *command]
    # SUDO_USER: a suite run under sudo would name its user in every event (review26d T2)
    environ = {k: v for k, v in os.environ.items() if k not in ("MAILMOAT_HOME", "SUDO_USER")}
    result = subprocess.run(command, capture_output=True, text=True, env=environ, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
    return result


def service_home(user, parent: Path, name: str, python: str, **settings) -> Path:
    """A data home owned by the service user and initialised by it, as `make run` as root
    does it (install -d -o mailmoat; runuser -u mailmoat -- mailmoat init)."""
    home = parent / name
    home.mkdir(mode=0o700)
    os.chown(home, user.pw_uid, user.pw_gid)
    mailmoat(python, "init", "--home", home, "--admin-password", ADMIN_PASSWORD, user=user)
    if settings:
        values = parent / f"{name}-settings.json"
        values.write_text(json.dumps(settings))
        mailmoat(python, "config", "import", values, "--home", home, user=user)
    return home


def not_owned_by(user, home: Path) -> list[str]:
    return [str(path) for path in [home, *home.rglob("*")] if path.lstat().st_uid != user.pw_uid]


# --- (a) root becomes the home's owner --------------------------------------------------------

def test_definitions_install_as_root_on_the_service_users_home_leaves_its_files(
        service_user, reachable_dir, python):
    home = service_home(service_user, reachable_dir, "defs", python)
    key = Ed25519PrivateKey.generate()
    source = reachable_dir / "defs-source"
    source.mkdir()
    (source / "mailmoat.ndb").write_text(EICAR_NDB)
    package = reachable_dir / "virus-2026-12-01-r1.mmdef"
    defs.build_package(source, key, package, kind="virus", version="2026-12-01", revision=1)
    package.chmod(0o644)

    # as root, as an administrator following the docs would
    mailmoat(python, "config", "set", "definitions.trusted_keys",
             json.dumps([defs.public_key_b64(key)]), "--home", home)
    result = mailmoat(python, "definitions", "install", package, "--home", home)
    assert "installed and current" in result.stdout

    assert not_owned_by(service_user, home) == []
    # and the service uses it: before, root's 0700 definitions/virus/ was "Permission denied"
    status = mailmoat(python, "definitions", "status", "--format", "json", "--home", home,
                      user=service_user)
    virus = json.loads(status.stdout)["virus"]
    assert (virus["version"], virus["revision"], virus["problem"]) == ("2026-12-01", 1, None)


def test_a_change_root_makes_on_the_service_users_home_is_recorded_as_roots(
        service_user, reachable_dir, python):
    """tester26b B1: the event (and the Configuration Change alert made of it) named the
    home's owner the command had become, so an administrator's change read as the
    service's own; with sudo, the person who asked is named too."""
    home = service_home(service_user, reachable_dir, "audit", python)
    mailmoat(python, "config", "set", "delivery.paused", "true", "--home", home)
    mailmoat(python, "config", "set", "delivery.paused", "false", "--home", home,
             prefix=("env", "SUDO_USER=alice"))
    mailmoat(python, "config", "set", "delivery.paused", "true", "--home", home,
             user=service_user)
    shown = mailmoat(python, "report", "detail", "--action", "object_modified", "--format",
                     "json", "--home", home, user=service_user).stdout
    users = [line.split("user=")[1].split(";")[0] for line in
             (json.loads(row)["info"] for row in shown.splitlines()) if "delivery.paused" in line]
    assert sorted(users) == sorted(["root", "root (sudo: alice)", service_user.pw_name])


def test_root_with_a_python_the_homes_owner_cannot_run_is_refused_before_touching_it(
        service_user, reachable_dir, python):
    if _runs_mailmoat(service_user, sys.executable):
        pytest.skip(f"{sys.executable} is within {service_user.pw_name}'s reach here")
    home = service_home(service_user, reachable_dir, "unreachable", python)
    before = {str(p): p.stat().st_mtime_ns for p in [home, *home.rglob("*")]}
    result = mailmoat(sys.executable, "config", "set", "delivery.paused", "true",
                      "--home", home, expect=1)
    assert result.stderr.startswith(f"mailmoat: {service_user.pw_name}, who owns the data "
                                    f"home {home}, cannot run this Mailmoat (")
    assert "out of its reach" in result.stderr and result.stderr.count("\n") == 1
    assert {str(p): p.stat().st_mtime_ns for p in [home, *home.rglob("*")]} == before
    assert not_owned_by(service_user, home) == []


# The console script's function and cli.main() run by a program of their own, which then
# prints what user it ended as, its TMPDIR, TEMP, TMP and XDG_* variables and its temporary
# directory.
_PROGRAM = """\
import json, os, sys, tempfile
from shared import cli
import {module}
tempfile.gettempdir()                   # as root: it holds on to root's TMPDIR
try:
    {call}
finally:
    print(json.dumps({{"euid": os.geteuid(), "tempdir": tempfile.gettempdir(),
                      "environ": {{k: v for k, v in os.environ.items()
                                  if k in ("TMPDIR", "TEMP", "TMP") or k.startswith("XDG_")}}}}))
"""


def console_script() -> tuple[str, str]:
    """The module and the call of the `mailmoat` console script (pyproject.toml)."""
    with open(Path(__file__).resolve().parents[2] / "pyproject.toml", "rb") as handle:
        target = tomllib.load(handle)["project"]["scripts"]["mailmoat"]
    module, function = target.split(":")
    return module, f"sys.exit({module}.{function}())"


def run_program(python: str, module: str, call: str, *args, env=None, expect=0):
    """(the command's output lines, what the program said of itself at its end)."""
    environ = {k: v for k, v in os.environ.items() if k != "MAILMOAT_HOME"}
    environ.update(env or {})
    result = subprocess.run([python, "-c", _PROGRAM.format(module=module, call=call),
                             *map(str, args)], capture_output=True, text=True, env=environ,
                            timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
    *output, last = result.stdout.splitlines()
    return output, result.stderr, json.loads(last)


def test_the_mailmoat_program_becomes_the_owner_but_a_program_calling_main_does_not(
        service_user, reachable_dir, python):
    """Review 14 B1: main() became the home's owner, so a test calling it in-process as root
    on the service user's home (the default home for root) made pytest that user, for good,
    and every test after it. Only the console script and `python -m shared.cli` (the tests
    above) change user now."""
    home = service_home(service_user, reachable_dir, "inprocess", python)
    output, _, end = run_program(python, "shared.cli", "sys.exit(cli.main(sys.argv[1:]))",
                                 "config", "get", "smtp.port", "--home", home)
    assert (output, end["euid"]) == (["25"], 0)

    output, _, end = run_program(python, *console_script(), "config", "get", "smtp.port",
                                 "--home", home)
    assert (output, end["euid"]) == (["25"], service_user.pw_uid)


def test_the_owner_gets_no_tmpdir_or_xdg_places_of_roots(service_user, reachable_dir, python,
                                                         tmp_path):
    """Review 14: HOME, USER and LOGNAME were the user's, but TMPDIR and XDG_* root's still,
    which the user cannot use (pytest's tmp_path is root's alone, as /root/tmp would be)."""
    home = service_home(service_user, reachable_dir, "environ", python)
    _, _, end = run_program(python, *console_script(), "config", "get", "smtp.port",
                            "--home", home,
                            env={"TMPDIR": str(tmp_path), "TMP": str(tmp_path),
                                 "XDG_RUNTIME_DIR": "/run/user/0",
                                 "XDG_CONFIG_HOME": str(tmp_path / ".config")})
    assert (end["euid"], end["environ"]) == (service_user.pw_uid, {})
    assert end["tempdir"] != str(tmp_path)  # tempfile had chosen it as root (_PROGRAM)


def test_only_build_and_keygen_run_as_root_on_the_service_users_home(
        service_user, reachable_dir, python):
    """Review 14 B2: `definitions update` ran as root like build and keygen, though the
    LiveUpdate it stands for installs into the home (root's files there stopped the core)."""
    home = service_home(service_user, reachable_dir, "update", python)
    _, stderr, end = run_program(python, *console_script(), "definitions", "update",
                                 "--home", home, expect=1)
    assert stderr.startswith("mailmoat: definitions update: LiveUpdate")
    assert end["euid"] == service_user.pw_uid

    key = reachable_dir / "update-signing.key"
    _, _, end = run_program(python, *console_script(), "definitions", "keygen", "--out", key,
                            "--home", home)
    assert end["euid"] == 0 and key.stat().st_uid == 0


# --- (b) ports below 1024: what the running core may bind ------------------------------------

def _free_privileged_port(exclude=()) -> int:
    """A port below the first unprivileged one that nothing holds on either wildcard
    address (this process is root, so it can try)."""
    candidates = list(range(600, min(privileged_port_start(), 1000)))
    random.shuffle(candidates)
    for port in candidates:
        if port in exclude:
            continue
        try:
            for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
                with socket.socket(family) as probe:
                    if family == socket.AF_INET6:
                        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    probe.bind((address, port))
        except OSError:
            continue
        return port
    pytest.skip("no free port below 1024 on this host")


def as_service(user, setpriv: str, *, capability: bool) -> list[str]:
    """The prefix that runs a process as `user` (setpriv execs it: no process in between to
    signal), with CAP_NET_BIND_SERVICE as systemd's AmbientCapabilities gives it, or without."""
    prefix = [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
    if capability:
        prefix += ["--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service"]
    return [*prefix, "--"]


def start_core(python: str, home: Path, prefix: list[str]) -> subprocess.Popen:
    log = open(home.parent / f"{home.name}-core.log", "wb")
    with log:
        return subprocess.Popen([*prefix, python, "-m", "shared.cli", "core", "--home",
                                 str(home)], stdout=log, stderr=subprocess.STDOUT)


def _core_as_service(service_user, reachable_dir, python, name: str, *,
                     capability: bool) -> tuple[Path, subprocess.Popen]:
    """A core on a new home of `service_user`, run as that user with or without
    CAP_NET_BIND_SERVICE, listening for SMTP on loopback; skips where the test cannot
    tell the two apart."""
    if privileged_port_start() <= 600:
        pytest.skip("every port from 600 up is unprivileged on this host "
                    "(net.ipv4.ip_unprivileged_port_start)")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (Debian: util-linux) to start the core as the user")
    smtp, http, https = free_ports(3)
    home = service_home(service_user, reachable_dir, name, python, **{
        "smtp.listen": ["127.0.0.1"], "smtp.port": smtp, "http.port": http,
        "https.port": https, "smtp.listener_processes": 1, "dns.resolvers": [DEAD_RESOLVER],
        "dns.timeout_seconds": 1})
    core = start_core(python, home, as_service(service_user, setpriv, capability=capability))
    try:
        wait_port(smtp)
    except BaseException:
        stop_process(core, 60)
        raise
    return home, core


def _wait_for_snapshot(home: Path, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = db.connect(home / "mailmoat.db")
        try:
            found = read_snapshot(conn)
        finally:
            conn.close()
        if found and "may_bind_privileged_ports" in found[0] and time.time() - found[1] < 5:
            return found[0]
        time.sleep(0.1)
    raise TimeoutError("the core wrote no status snapshot")


def test_a_port_the_running_core_may_bind_is_accepted_from_a_user_who_may_not(
        service_user, reachable_dir, python):
    """The core runs as the service user with CAP_NET_BIND_SERVICE, as systemd's
    AmbientCapabilities gives it; `config set` runs as the same user without it."""
    home, core = _core_as_service(service_user, reachable_dir, python, "ports",
                                  capability=True)
    busy = socket.socket()
    try:
        assert _wait_for_snapshot(home)["may_bind_privileged_ports"] is True

        # another program's port is still refused, though this user cannot test-bind it
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("0.0.0.0", _free_privileged_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        result = mailmoat(python, "config", "set", "smtp.port", taken, "--home", home,
                          user=service_user, expect=2)
        assert result.stderr == (f"smtp.port: port {taken} is in use by another program; "
                                 f"the old value is kept\n")

        port = _free_privileged_port(exclude={taken})
        result = mailmoat(python, "config", "set", "smtp.port", port, "--home", home,
                          user=service_user)
        assert result.stdout == "smtp.port set\n"
        wait_port(port)                                     # the core moved there
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            assert client.recv(512).startswith(b"220 ")
    finally:
        busy.close()
        stop_process(core, 60)


def test_a_port_the_running_core_may_not_bind_is_refused_whoever_asks(
        service_user, reachable_dir, python):
    """The core runs as the service user without the capability; `config set` runs as root,
    which could bind the port itself and so accepted it (the core then crash-looped)."""
    home, core = _core_as_service(service_user, reachable_dir, python, "noports",
                                  capability=False)
    try:
        assert _wait_for_snapshot(home)["may_bind_privileged_ports"] is False
        port = _free_privileged_port()
        result = mailmoat(python, "config", "set", "smtp.port", port, "--home", home, expect=2)
        assert result.stderr == "smtp.port: " + PRIVILEGED_RULE.format(
            port=port, who="the running core") + "\n"
    finally:
        stop_process(core, 60)
    assert not_owned_by(service_user, home) == []
