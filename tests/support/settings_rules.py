"""One setting through the shared validation, as a save would: what is stored, or the one
`KEY: rule` line that refuses it."""

from __future__ import annotations

import pytest

from shared.settings import SettingError, defaults, validate_changes

__all__ = ["stored", "rule_of"]


def stored(key, value):
    """The value a save of `key` would store (normalised by its kind)."""
    return validate_changes(defaults(), {key: value})[key]


def rule_of(key, value) -> str:
    """The one line refusing `value` for `key`."""
    with pytest.raises(SettingError) as info:
        validate_changes(defaults(), {key: value})
    [line] = info.value.lines()
    return line
