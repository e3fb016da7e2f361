"""A rule that spans keys names the key the administrator typed (settings findings 16,
section 7): `mailmoat config set KEY VALUE` refused by a rule about another key says KEY and
what the other key needs, as the match-everything lists do for their switch. A console form,
which saves both keys, is told about the other one, its field, as before."""

import pytest

from shared import cli, db
from shared.settings import SettingError, defaults, hash_password, validate_changes
from shared.settings_store import apply_changes, load

# (stored first, KEY VALUE typed, the line `config set` prints, the line for both keys given)
CASES = [
    ({"heuristic.forward_score": 40, "heuristic.forward_to": "spam@example.com"},
     ("heuristic.drop_score", "30"),
     "heuristic.drop_score: must be higher than heuristic.forward_score",
     "heuristic.forward_score: must be lower than heuristic.drop_score"),
    ({"admin.report_only.enabled": True, "admin.report_only.password": "Report-Pass-1"},
     ("admin.report_only.password", "null"),
     "admin.report_only.password: must be set while admin.report_only.enabled is on: turn "
     "the account off first",
     "admin.report_only.enabled: set admin.report_only.password first"),
    ({}, ("heuristic.forward_score", "40"),
     "heuristic.forward_score: needs heuristic.forward_to, where forwarded spam goes: set it "
     "first",
     "heuristic.forward_to: required when heuristic.forward_score is set"),
    ({}, ("subject.action", "forward"),
     "subject.action: forward needs subject.forward_to: set it first",
     "subject.forward_to: required when subject.action is forward"),
    ({"av.deleted_text.enabled": False, "av.deleted_text": ""},
     ("av.deleted_text.enabled", "true"),
     "av.deleted_text.enabled: needs av.deleted_text, the text added, which is empty: set it "
     "first",
     "av.deleted_text: must not be empty while av.deleted_text.enabled is on: the text added "
     "is this one"),
    ({"delivery.retry_max_seconds": 600}, ("delivery.retry_initial_seconds", "900"),
     "delivery.retry_initial_seconds: must not be higher than delivery.retry_max_seconds",
     "delivery.retry_max_seconds: must not be lower than delivery.retry_initial_seconds"),
    ({}, ("forwarding.enabled", "true"),
     "forwarding.enabled: needs forwarding.host: set it first",
     "forwarding.host: required when forwarding.enabled is true"),
    ({}, ("scan.mode", "include"),
     "scan.mode: include needs scan.include to list at least one extension: set it first",
     "scan.include: must list at least one extension when scan.mode is include"),
]


def _store(home, values):
    conn = db.connect(home.db)
    try:
        apply_changes(conn, values)
        return load(conn)
    finally:
        conn.close()


@pytest.mark.parametrize("stored, typed, line, form_line", CASES)
def test_config_set_is_refused_naming_the_key_typed(home, capsys, stored, typed, line,
                                                     form_line):
    before = _store(home, stored)
    capsys.readouterr()
    assert cli.main(["config", "set", *typed, "--home", str(home.root)]) == 2
    assert capsys.readouterr().err == line + "\n"
    assert _store(home, {}) == before


@pytest.mark.parametrize("stored, typed, line, form_line", CASES)
def test_a_form_saving_both_keys_is_told_about_the_other(stored, typed, line, form_line):
    current = {**defaults(), **stored}
    if "admin.report_only.password" in stored:
        current["admin.report_only.password"] = hash_password(stored["admin.report_only.password"])
    key, text = typed
    other = form_line.split(":", 1)[0]
    value = {"null": None, "true": True}.get(text, int(text) if text.isdigit() else text)
    with pytest.raises(SettingError) as info:
        validate_changes(current, {key: value, other: current[other]})
    assert info.value.lines() == [form_line]
