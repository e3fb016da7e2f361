"""The settings `python -m bench.pipeline` stores are ones today's rules accept: a rule added
since (a `\\%` in a rule term, regression hunt 14) stopped the benchmark at its first line, and
only a benchmark run found it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.pipeline import PROFILES
from shared.settings import defaults, validate_changes

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("mode", sorted(PROFILES))
def test_each_pipeline_profile_is_accepted_by_the_settings_rules(mode):
    profile: dict = {}
    for name in PROFILES[mode]:
        profile.update(json.loads((BENCH / name).read_text()))
    assert profile
    validate_changes(defaults(), profile)       # SettingError names the key and the rule
