"""The text added where an attachment was deleted may not be empty while adding it is on
(guide45 minor note: an empty `av.deleted_text` was accepted with "add text" on, so nothing
was added while the page said a text would be), as a notification text may not be empty."""

import pytest

from shared.settings import SettingError, defaults, refused_values, validate_changes
from tests.support.settings_rules import rule_of, stored

PAIRS = [("av.deleted_text.enabled", "av.deleted_text"),
         ("filename.deleted_text.enabled", "filename.deleted_text")]


@pytest.mark.parametrize("switch, text", PAIRS)
@pytest.mark.parametrize("empty", ["", "  \n "])
def test_an_empty_text_is_refused_while_it_is_added(switch, text, empty):
    assert rule_of(text, empty) == (
        f"{text}: must not be empty while {switch} is on: the text added is this one")


@pytest.mark.parametrize("switch, text", PAIRS)
def test_turning_the_text_on_over_an_empty_one_is_refused(switch, text):
    current = {**defaults(), switch: False, text: ""}
    with pytest.raises(SettingError) as info:
        validate_changes(current, {switch: True})
    # named as typed (`config set SWITCH true`; settings findings 16, section 7)
    assert info.value.lines() == [
        f"{switch}: needs {text}, the text added, which is empty: set it first"]
    with pytest.raises(SettingError) as info:
        validate_changes(current, {switch: True, text: ""})         # a form saves both
    assert info.value.lines() == [
        f"{text}: must not be empty while {switch} is on: the text added is this one"]


@pytest.mark.parametrize("switch, text", PAIRS)
def test_an_empty_text_is_accepted_while_none_is_added(switch, text):
    assert validate_changes(defaults(), {switch: False, text: ""}) == {switch: False, text: ""}
    assert stored(text, "Removed.") == "Removed."


def test_an_empty_text_stored_before_is_listed_and_blocks_no_other_edit():
    old = {**defaults(), "av.deleted_text": ""}
    assert refused_values(old) == [("av.deleted_text", (
        "must not be empty while av.deleted_text.enabled is on: the text added is this one"))]
    validate_changes(old, {"av.on_virus": "delete"})
