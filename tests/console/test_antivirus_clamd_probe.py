"""Antivirus Settings: a save that scans with clamd asks clamd for PONG, and when none comes
the page warns, naming the address, the problem and what becomes of mail until clamd answers
— the save stands (guide45 finding 3: "Changes saved." and nothing else, then every message
held). Against a port nothing listens on, a missing unix socket, a port that never answers,
and a real clamd (tests/support/clamd.py), which gets no warning. The console asks without any
core code (review14 D1)."""

from __future__ import annotations

import html
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.clamd import Clamd, free_port
from tests.unit.scan.support import SHIPPED

from .test_configuration import _form_fields


def _save(admin, **changes) -> str:
    """The Antivirus Settings page after saving `changes` (form field names), as the browser
    shows it after the redirect."""
    data = _form_fields(admin, "/antivirus/")
    data.update(changes)
    data = {name: value for name, value in data.items() if value is not None}  # None: unticked
    response = admin.post("/antivirus/", data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return html.unescape(admin.get("/antivirus/").get_data(as_text=True))


def _warnings(page: str) -> list[str]:
    return re.findall(r'<p class="flash warning" role="status">([^<]*)</p>', page)


@pytest.mark.parametrize("unprocessable, words", [
    ("hold", "mail is held"), ("deliver", "mail is delivered without clamd's scan"),
    ("drop", "mail is dropped")])
def test_clamd_that_does_not_answer_is_saved_with_a_warning(admin, unprocessable, words):
    admin.set(scan__unprocessable=unprocessable)
    address = f"127.0.0.1:{free_port()}"
    page = _save(admin, av__engine="clamd", av__clamd__address=address)
    assert "Changes saved." in page
    assert _warnings(page) == [
        f"clamd at {address} does not answer (unreachable: Connection refused). The settings "
        f"are saved; until clamd answers, {words}."]
    values = admin.settings()
    assert values["av.engine"] == "clamd" and values["av.clamd.address"] == address


def test_missing_unix_socket_and_silent_port_are_named(admin, tmp_path):
    path = str(tmp_path / "clamd.sock")
    page = _save(admin, av__engine="both", av__clamd__address=path)
    assert _warnings(page) == [
        f"clamd at {path} does not answer (unreachable: No such file or directory). The "
        f"settings are saved; until clamd answers, mail is held."]
    with socket.socket() as silent:           # connects (the backlog), never says PONG
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        page = _save(admin, av__clamd__address=address)
    assert _warnings(page) == [
        f"clamd at {address} does not answer (timed out). The settings are saved; until "
        f"clamd answers, mail is held."]


def test_no_warning_when_clamd_answers_or_is_not_used(admin, tmp_path):
    with Clamd(tmp_path, SHIPPED.glob("*.ndb")) as clamd:
        page = _save(admin, av__engine="clamd", av__clamd__address=clamd.address)
    assert "Changes saved." in page and _warnings(page) == []
    # clamd is gone now, but the engine saved is the builtin one: nothing to ask
    page = _save(admin, av__engine="builtin")
    assert "Changes saved." in page and _warnings(page) == []
    admin.set(av__engine="clamd")
    page = _save(admin, av__enabled=None)       # scanning off: clamd is not asked either
    assert admin.settings()["av.enabled"] is False
    assert "Changes saved." in page and _warnings(page) == []


def test_the_ping_brings_no_core_code_into_the_console():
    """review14 D1: the PING came from core/scan/clamd.py, which loaded the builtin engine and
    the unpackers into the console process on its first Antivirus save. A fresh interpreter
    on this tree's code (its root as the working directory) asks a port nothing listens on."""
    values = {"av.enabled": True, "av.engine": "clamd", "scan.unprocessable": "hold",
              "av.clamd.address": f"127.0.0.1:{free_port()}"}
    code = ("import sys\n"
            "from console.antivirus.engine_check import save_warnings\n"
            f"print(save_warnings({values!r}))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'core'))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    warnings, core_modules = done.stdout.splitlines()
    assert "does not answer (unreachable: Connection refused)" in warnings
    assert core_modules == "[]"
