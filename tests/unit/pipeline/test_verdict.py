"""verdict.py on hand-made findings: one test per precedence rule (SPEC §5)."""

import pytest

from core.pipeline.findings import Finding
from core.pipeline.verdict import PRECEDENCE, Forward, carried_out, decide
from shared.settings import SPAM_QUARANTINE_NOT_BUILT


def f(action, rule=None, **kw):
    kw.setdefault("event", "content_rule_violation")
    return Finding(rule=rule or f"rule.{action}", action=action, reason=action, **kw)


def test_no_findings_delivers():
    verdict = decide([])
    assert verdict.disposition == "deliver" and verdict.rule is None and verdict.edits == ()


def test_precedence_table_is_the_spec_order():
    assert sorted(PRECEDENCE, key=PRECEDENCE.get) == [
        "reject", "drop", "hold", "quarantine", "forward", "deliver"]


@pytest.mark.parametrize("strong,weak", [
    ("drop", "hold"), ("drop", "quarantine"), ("drop", "forward"), ("drop", "deliver"),
    ("hold", "quarantine"), ("hold", "forward"), ("hold", "deliver"),
    ("quarantine", "forward"), ("quarantine", "deliver"), ("forward", "deliver"),
])
def test_stronger_disposition_wins_in_either_order(strong, weak):
    # the virus quarantine: the spam quarantine is not built yet (rule 5)
    extra = {"forward": {"forward_to": "x@y.test"}, "quarantine": {"quarantine": "virus"}}
    a = f(strong, **extra.get(strong, {}))
    b = f(weak, **extra.get(weak, {}))
    assert decide([a, b]).disposition == strong
    assert decide([b, a]).disposition == strong
    assert decide([b, a]).rule == f"rule.{strong}"


def test_reject_after_data_becomes_drop():
    verdict = decide([f("reject"), f("hold")])
    assert verdict.disposition == "drop" and verdict.rule == "rule.reject"
    assert decide([f("reject")], after_data=False).disposition == "reject"


def test_first_of_equals_names_the_rule_and_the_subject():
    verdict = decide([f("forward", "first", forward_to="a@x.test", forward_subject="S1"),
                      f("forward", "second", forward_to="b@x.test", forward_subject="S2")])
    assert (verdict.rule, verdict.forward_addresses, verdict.forward_subject) == (
        "first", ("a@x.test", "b@x.test"), "S1")


def test_every_forward_is_carried_out_once_per_address():
    # rule 6, guide45 finding 5: the second forward's address never got the message
    verdict = decide([f("forward", "blacklist", forward_to="abuse@x.test", forward_subject="B"),
                      f("log"),
                      f("forward", "rbl", forward_to="trap@x.test", forward_subject="R"),
                      f("forward", "subject", forward_to="ABUSE@x.test", forward_subject="S"),
                      f("forward", "rules", forward_to="trap@x.test", forward_subject="R")])
    assert verdict.rule == "blacklist"
    assert verdict.forwards == (Forward(("abuse@x.test",), "B"), Forward(("trap@x.test",), "R"))
    assert verdict.forward_subject == "B"                # the message itself: the first group
    assert verdict.forward_addresses == ("abuse@x.test", "trap@x.test")


def test_forwards_with_one_subject_share_the_message():
    verdict = decide([f("forward", "a", forward_to="a@x.test", forward_subject="Spam"),
                      f("forward", "b", forward_to="b@x.test", forward_subject=" Spam ")])
    assert verdict.forwards == (Forward(("a@x.test", "b@x.test"), "Spam"),)


def test_a_forward_keeping_the_subject_puts_its_group_on_the_message():
    # the message's own Subject is not to be had on a copy of a rewritten message, a
    # forward's Subject always is: the group keeping it goes with the message itself
    verdict = decide([f("forward", "a", forward_to="a@x.test", forward_subject="A"),
                      f("forward", "b", forward_to="b@x.test"),
                      f("forward", "c", forward_to="c@x.test", forward_subject="  ")])
    assert verdict.forwards == (Forward(("b@x.test", "c@x.test"), None),
                                Forward(("a@x.test",), "A"))
    # review14 B4: the deciding finding's address gets a copy here, not the message
    assert verdict.rule == "a" and verdict.forward_subject is None


def test_forwards_beaten_by_a_stronger_disposition_go_nowhere():
    verdict = decide([f("forward", forward_to="a@x.test"), f("drop")])
    assert verdict.forwards == () and verdict.forward_subject is None


def test_log_findings_decide_nothing():
    assert decide([f("log"), f("log")]).disposition == "deliver"


def test_edits_apply_only_when_delivering():
    edit = f("remove_part", part=2, event="attachment_deleted")
    assert decide([edit]).edits == (edit,)
    assert decide([edit, f("forward", forward_to="a@x.test")]).edits == (edit,)
    for action in ("drop", "hold", "quarantine"):
        assert decide([edit, f(action)]).edits == ()


def test_a_part_is_removed_once_and_removal_beats_replacement():
    one = f("remove_part", "filename.patterns", part=3)
    two = f("remove_part", "encrypted.action", part=3)
    repair = f("replace_part", "av", part=3, data={"content": b"x"})
    assert decide([one, two, repair]).edits == (one,)


def test_a_part_removed_twice_carries_every_text_once():
    # guide36 finding 7: an infected file with a blocked name got only the policy text
    policy = f("remove_part", "filename.patterns", part=3, text="violated the policy")
    virus = f("remove_part", "av.on_virus", part=3, text="infected with a virus")
    again = f("remove_part", "filename.patterns", part=3, text="violated the policy")
    other = f("remove_part", "filename.patterns", part=4, text="violated the policy")
    [edit, kept] = decide([policy, virus, again, other]).edits
    assert (edit.rule, edit.part, edit.text) == (
        "filename.patterns", 3, "violated the policy\ninfected with a virus")
    assert kept is other
    silent = f("remove_part", "encrypted.action", part=3)
    assert decide([silent, virus]).edits[0].text == "infected with a virus"


def test_quarantine_names_its_folder():
    assert decide([f("quarantine", quarantine="virus")]).quarantine == "virus"


@pytest.mark.parametrize("folder", [None, "spam"])
def test_mail_asked_into_the_spam_quarantine_is_held_while_it_is_not_built(folder):
    # rule 5 (review13: the content rule check decided this itself, so a premium
    # disposition of quarantine would have sent mail where nobody can reach it)
    asked = f("quarantine", quarantine=folder)
    verdict = decide([f("forward", forward_to="a@x.test"), asked])
    assert (verdict.disposition, verdict.rule, verdict.quarantine) == (
        "hold", "rule.quarantine", None)
    assert verdict.reason == f"quarantine; held, not quarantined: {SPAM_QUARANTINE_NOT_BUILT}"
    assert decide([f("hold", "first"), asked]).rule == "first"     # competes as a hold
    done = carried_out(asked)
    assert (done.action, done.reason) == ("hold", verdict.reason)
    assert carried_out(done) == done


def test_finding_validates_its_shape():
    with pytest.raises(ValueError):
        Finding(rule="r", action="explode", event=None, reason="")
    with pytest.raises(ValueError):
        Finding(rule="r", action="forward", event=None, reason="")
    with pytest.raises(ValueError):
        Finding(rule="r", action="remove_part", event=None, reason="")
