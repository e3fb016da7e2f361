"""A full disk under a running core (SPEC §3 size, shared/disk.py): SMTP answers 452 4.3.1,
the core keeps running and keeps delivering (which is what frees the disk), the events of
that time are written once there is room again, and a command-line change says in one line
why it failed. On a real, small tmpfs filled to the last byte, in a mount namespace of the
scenario's own (tests/support/full_disk.py), so it needs neither root nor a spare disk."""

from __future__ import annotations

import pytest

from tests.support.namespaces import in_own_mount


# a real tmpfs filled in a namespace of its own: seconds; `make test-slow` (CI runs it)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def facts(tmp_path_factory) -> dict:
    return in_own_mount(tmp_path_factory.mktemp("full-disk"), "tests.support.full_disk")


def test_mail_is_refused_with_452_while_the_disk_is_full(facts):
    assert facts["before"] == "250" and facts["delivered_before"] == 1
    assert facts["free_octets"] == 0
    assert facts["while_full"].startswith("452 4.3.1"), facts["while_full"]


def test_the_core_keeps_running_and_delivering_while_the_disk_is_full(facts):
    assert facts["to_defer"] == "250" and facts["deferred"]
    assert facts["delivered_while_full"] == 2, facts["log"]
    assert facts["core_running_while_full"], facts["log"]


def test_once_there_is_room_mail_flows_and_the_events_of_the_full_time_are_written(facts):
    assert facts["after"] == "250" and facts["delivered_after"] == 3
    assert facts["core_running_after"], facts["log"]
    assert facts["core_exit"] == 0, facts["log"]
    assert "Traceback" not in facts["log"], facts["log"]
    assert facts["events"]["service_stopped"] == 1
    assert facts["rejected"][0]["result"] == "452"


def test_a_message_that_would_leave_under_5_percent_free_is_refused(facts):
    """SPEC §3: "a message that would leave the spool's file system under 5% free is refused
    with 452 4.3.1" — at MAIL by its declared SIZE, after DATA by its real size, whether it
    was streamed into the spool or kept in memory; smaller ones still pass."""
    assert facts["declared_too_big"].startswith("452 4.3.1"), facts["declared_too_big"]
    assert facts["streamed_too_big"].startswith("452 4.3.1"), facts["streamed_too_big"]
    assert facts["buffered_too_big"].startswith("452 4.3.1"), facts["buffered_too_big"]
    assert facts["small_declared"] == "250" and facts["small"] == "250"
    assert facts["delivered_small"] == 5
    assert facts["events"] == {"delivered": 5, "rejected": 5, "service_stopped": 1}
    rules = [row["rule"] for row in facts["rejected"]]
    assert rules.count("spool.disk_free") == 4 and rules.count("spool") == 1, rules
    # diskfull21 C2: at MAIL no message has come yet (the declared SIZE, when there is one)
    infos = [row["info"] for row in facts["rejected"] if row["rule"] == "spool.disk_free"]
    declared = [info for info in infos
                if info.endswith(" free at MAIL with the declared SIZE of 1500000 octets")]
    after_data = [info for info in infos if info.endswith(" free with this message")]
    # the one sent as the disk filled is refused at MAIL or after DATA, as the listener's
    # last look at the disk (DISK_CHECK_SECONDS) saw it
    at_mail = [info for info in infos if info.endswith(" free at MAIL")]
    assert len(declared) == 1 and len(after_data) >= 2, infos
    assert len(declared) + len(after_data) + len(at_mail) == 4, infos


def test_a_message_that_fills_the_disk_while_it_streams_in_gets_452_not_451(facts):
    """Chaos tester: a disk that filled during DATA was answered '451 4.3.0 Local error'
    from the session's error boundary, with a connection_closed 'internal error' event."""
    assert facts["streamed_past_the_disk"].startswith("452 4.3.1"), \
        facts["streamed_past_the_disk"]
    [spool] = [row for row in facts["rejected"] if row["rule"] == "spool"]
    assert spool["result"] == "452" and "No space left" in spool["info"]


def test_a_command_line_change_on_a_full_disk_fails_in_one_line(facts):
    assert facts["config_set"]["status"] == 1
    assert facts["config_set"]["stderr"].strip().splitlines() == [
        "mailmoat: no space left on the data home's disk (database or disk is full)"]
