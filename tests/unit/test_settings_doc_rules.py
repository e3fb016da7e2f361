"""What docs/settings.md (shared/settings_doc.py) says a value is held to, and the rules
saying the same (settings20): the choices a rule lists are the ones it accepts."""

import pytest

from shared.settings import SCHEMA, SettingError, defaults, refused_values, validate_changes
from shared.settings_doc import render
from tests.unit.test_settings_doc import table_rows

# Keys whose choice `quarantine` waits for the spam quarantine (SPAM_QUARANTINE_NOT_BUILT).
TO_SPAM_QUARANTINE = {"rules.content_action": "drop, log, forward",
                      "premium.spam.disposition": "drop, forward, deliver",
                      "premium.suspected.disposition": "drop, forward, deliver"}


def lines(changes, current=None):
    with pytest.raises(SettingError) as info:
        validate_changes(defaults() if current is None else current, changes)
    return info.value.lines()


@pytest.mark.parametrize("key, offered", TO_SPAM_QUARANTINE.items())
def test_a_typo_is_not_sent_to_quarantine_which_is_refused(key, offered):
    """settings20 B2: 'Drop' was answered "must be one of drop, quarantine, forward,
    deliver", and quarantine then refused."""
    assert lines({key: "Drop"}) == [f"{key}: must be one of {offered}"]
    assert table_rows(render())[key][0] == "one of " + offered.replace(", ", " \\| ")
    [refused] = lines({key: "quarantine"})
    assert refused.startswith(f"{key}: quarantine is not available yet")
    # stored by an older release, it still loads, and is listed as refused
    stored = {**defaults(), key: "quarantine"}
    assert validate_changes(stored, {"smtp.max_incoming": 20})
    [rule] = [rule for k, rule in refused_values(stored) if k == key]
    assert rule.startswith("quarantine is not available yet")
    # what the core does meanwhile: content rules hold the mail (review20e C3); premium
    # antispam, not built, scores none, so it holds nothing (review20f R1)
    holds = "; stored by an older release, matching mail is held in the hold queue instead"
    assert rule.endswith(holds) == (key == "rules.content_action"), rule
    assert "quarantine" in SCHEMA[key].kind.choices     # the console shows a stored one


def test_a_key_no_change_may_set_to_null_is_not_typed_null_or():
    """settings20 C5: admin.password read "null or text (≤32 chars)", and null is refused."""
    rows = table_rows(render())
    assert rows["admin.password"][0] == "text (≤32 chars)"
    initialised = {**defaults(), **validate_changes(defaults(), {"admin.password": "s3cret"})}
    assert lines({"admin.password": None}, initialised)[0].startswith(
        "admin.password: must be set")
    # the report-only password may be null (no account): typed so
    assert rows["admin.report_only.password"][0] == "null or text (≤32 chars)"


# settings20 B1: each was refused though inside its documented Type, and no row said why.
SPANNING = [
    ({"delivery.retry_max_seconds": 1}, "delivery.retry_max_seconds",
     "`delivery.retry_max_seconds` is not lower than `delivery.retry_initial_seconds`."),
    ({"forwarding.enabled": True}, "forwarding.enabled",
     "`forwarding.enabled` on needs `forwarding.host`."),
    ({"scan.mode": "include"}, "scan.mode",
     "`scan.mode` include needs `scan.include` to list at least one extension."),
    ({"subject.action": "forward"}, "subject.action",
     "`subject.action` forward needs `subject.forward_to`."),
    ({"heuristic.forward_score": 50}, "heuristic.forward_score",
     "`heuristic.forward_score`, when set, needs `heuristic.forward_to`."),
    ({"admin.report_only.enabled": True}, "admin.report_only.enabled",
     "`admin.report_only.enabled` on needs `admin.report_only.password` set."),
]


@pytest.mark.parametrize("change, key, says", SPANNING)
def test_a_value_refused_by_a_rule_that_spans_keys_finds_it_in_its_row(change, key, says):
    assert lines(change)                                 # refused at the defaults
    assert says in table_rows(render())[key][3]
    assert f"| {says} |" in render()                     # and in the closing section


def test_an_empty_smtp_listen_is_outside_its_type():
    assert table_rows(render())["smtp.listen"][0] == "list of IP address (1..16 entries)"
    assert lines({"smtp.listen": []}) == ["smtp.listen: must have at least 1 entry"]


def test_every_cross_rule_is_in_the_rows_of_its_keys_and_the_closing_section():
    """From one source: each rule's CrossRule.says, never a hand-written copy."""
    from shared.settings_cross_rules import CROSS_RULES
    from shared.settings_doc import _text
    text = render()
    rows = table_rows(text)
    closing = text.split("\n## Rules that span keys\n")[1]
    for rule in CROSS_RULES:
        assert rule.says.strip(), rule.test.__qualname__
        assert f"| {_text(rule.says)} |" in closing
        for key in rule.keys:
            assert _text(rule.says) in rows[key][3], (key, rule.says)


def test_the_rows_of_ports_and_addresses_say_what_this_host_refuses_when_saved():
    # review20e C2: smtp.port defaults to 25, and a save of a port below 1024 without root or
    # CAP_NET_BIND_SERVICE is refused: the reference said nothing of it
    from shared.settings_doc import render
    rows = {line.split(" | ")[0].strip("| `"): line for line in render().splitlines()
            if line.startswith("| `")}
    for key in ("smtp.port", "http.port", "https.port"):
        assert "CAP\\_NET\\_BIND\\_SERVICE" in rows[key] and "another program" in rows[key], key
    assert rows["smtp.listen"].count("does not have") == 1     # in its help, once
    assert "broadcast address" in rows["dns.resolvers"]
