"""The Setup tab's scan.temp_dir notice compares the directories meant, not the values typed
(settings16 §7): set back to empty, which means tmp/ in the data home, while the running
core scans there, nothing waits for a restart, and the tab said it did."""

from __future__ import annotations

import trio

from core.app import run_core
from tests.console.test_configuration import TEMP_DIR_NOTE
from tests.integration.test_not_listening_notice import _logged_on
from tests.integration.test_scratch_dir import _reported
from tests.support.core import make_home, set_settings

COULD_NOT = "could not be used when Mailmoat started"


async def _setup_after(home, console, **changes) -> str:
    """The Setup tab after `changes` were saved (none: as it is)."""
    if changes:
        set_settings(home, **changes)
    return await trio.to_thread.run_sync(
        lambda: console.get("/configuration/setup").get_data(as_text=True))


async def _started(nursery, home, expected: dict):
    core = await nursery.start(run_core, home)
    with trio.fail_after(10):
        while _reported(home) != expected:
            await trio.sleep(0.05)
    return core


async def test_empty_again_while_the_core_fell_back_to_tmp_waits_for_nothing(tmp_path,
                                                                          nursery):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    unusable = str(blocker / "scratch")
    home = make_home(tmp_path / "home", scan__temp_dir=unusable)
    console = await trio.to_thread.run_sync(_logged_on, home)
    try:
        core = await _started(nursery, home, {"read_at_start": unusable,
                                              "in_use": str(home.tmp), "fell_back": True})
        page = await _setup_after(home, console)
        assert COULD_NOT in page and TEMP_DIR_NOTE not in page
        page = await _setup_after(home, console, scan__temp_dir=None)
        assert TEMP_DIR_NOTE not in page and COULD_NOT not in page
        # another directory still waits for the restart
        page = await _setup_after(home, console, scan__temp_dir=str(tmp_path / "other"))
        assert f"{TEMP_DIR_NOTE}; until then scanning uses {home.tmp}." in page
        core.cancel_scope.cancel()
    finally:
        console.app.extensions["mailmoat"].close()


async def test_tmp_in_the_data_home_named_or_empty_is_one_directory(tmp_path, nursery):
    home = make_home(tmp_path / "home")
    set_settings(home, scan__temp_dir=str(home.tmp))
    console = await trio.to_thread.run_sync(_logged_on, home)
    try:
        core = await _started(nursery, home, {"read_at_start": str(home.tmp),
                                              "in_use": str(home.tmp), "fell_back": False})
        page = await _setup_after(home, console, scan__temp_dir=None)
        assert TEMP_DIR_NOTE not in page
        page = await _setup_after(home, console, scan__temp_dir=f"{home.tmp}/")
        assert TEMP_DIR_NOTE not in page
        core.cancel_scope.cancel()
    finally:
        console.app.extensions["mailmoat"].close()
