"""scan.temp_dir (SPEC §3, takes effect at restart): the core's scratch directory for
scanning — where a container tool writes the archive it unpacks (rar), and what the low-disk
check watches as "email". Absolute only; created at start; one that cannot be used is said
by an event, and tmp/ in the data home serves instead."""

from __future__ import annotations

import os
import stat

import pytest
import rarfile

from core.app import run_core
from core.pipeline.decompose import SCRATCH_DIR_KEY, decompose_bytes
from shared import db
from shared.events import Action
from shared.settings import SettingError
from shared.status import read_snapshot
from tests.support.core import make_home, set_settings
from tests.support.waiting import events_of, until
from tests.unit.pipeline.support import CONTEXT, corpus_file, message, settings


def test_a_relative_scratch_directory_is_refused(tmp_path):
    home = make_home(tmp_path)
    with pytest.raises(SettingError) as error:
        set_settings(home, scan__temp_dir="scratch")
    assert error.value.lines() == [
        "scan.temp_dir: must be an absolute path (starting with /)"]


async def test_the_core_creates_the_scratch_directory_and_scans_with_it(tmp_path, nursery):
    scratch = tmp_path / "scratch" / "deep"
    home = make_home(tmp_path / "home", scan__temp_dir=str(scratch))
    core = await nursery.start(run_core, home)
    assert stat.S_IMODE(os.stat(scratch).st_mode) == 0o700
    pipeline = core.queue.pipeline.inner
    assert pipeline._shared_arguments(core.settings())[0][SCRATCH_DIR_KEY] == str(scratch)
    # the Setup page compares it with the stored value (console/configuration/service.py)
    await until(lambda: _reported(home) == {"read_at_start": str(scratch),
                                            "in_use": str(scratch), "fell_back": False}, 10)
    core.cancel_scope.cancel()


async def test_an_unusable_scratch_directory_is_reported_and_tmp_serves(tmp_path, nursery):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    home = make_home(tmp_path / "home", scan__temp_dir=str(blocker / "scratch"))
    core = await nursery.start(run_core, home)
    pipeline = core.queue.pipeline.inner
    assert pipeline._shared_arguments(core.settings())[0][SCRATCH_DIR_KEY] == str(home.tmp)
    await core.events.aflush()
    [event] = events_of(home, Action.SCAN_ERROR)
    assert event["rule"] == "scan.temp_dir"
    assert event["info"].startswith(f"cannot use {blocker / 'scratch'} (")
    await until(lambda: _reported(home) == {"read_at_start": str(blocker / "scratch"),
                                            "in_use": str(home.tmp), "fell_back": True}, 10)
    core.cancel_scope.cancel()


def _reported(home):
    """The temporary directory as the core's status snapshot reports it."""
    conn = db.connect(home.db)
    try:
        found = read_snapshot(conn)
    finally:
        conn.close()
    return found and found[0].get("scan_temp_dir")


def test_a_rar_is_read_with_the_scratch_directory_for_its_tool(tmp_path):
    rar = corpus_file("archives/strelka/test.rar")
    raw = message(attachments=[("test.rar", rar, "application/x-rar-compressed")])
    values = {**settings(), SCRATCH_DIR_KEY: str(tmp_path)}
    rarfile.HACK_TMP_DIR = None
    view = decompose_bytes(raw, CONTEXT, values)
    assert any(p.filename and p.filename != "test.rar" for p in view.parts)   # its members
    assert rarfile.HACK_TMP_DIR == str(tmp_path)
