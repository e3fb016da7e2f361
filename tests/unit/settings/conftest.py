"""Fixtures of the settings tests."""

from __future__ import annotations

import pytest

from shared import db
from shared.paths import DataHome


@pytest.fixture
def home(tmp_path) -> DataHome:
    """An empty data home whose database has every migration: settings at their defaults."""
    home = DataHome(tmp_path / "home")
    home.root.mkdir()
    conn = db.connect(home.db)
    db.migrate(conn)
    conn.close()
    return home
