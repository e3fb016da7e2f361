"""Each client's sessions, counted in one process or together by every listener process
(core/smtp/client_sessions.py): the per-client limit must not depend on which process the
kernel gave a connection to."""

from __future__ import annotations

import pytest
import trio

from core.smtp.client_sessions import (RETRY_SECONDS, AloneClientSessions,
                                       LocalClientSessions, SharedClientSessions)
from core.smtp.server import client_limit, part_of


@pytest.mark.parametrize("max_incoming, limit", [(15, 8), (16, 8), (2, 1), (1, 1), (1000, 500)])
def test_a_client_may_have_half_of_max_incoming_rounded_up(max_incoming, limit):
    assert client_limit(max_incoming) == limit


def test_local_counts_open_sessions_per_client():
    sessions = LocalClientSessions()
    assert [sessions.opened("192.0.2.1") for _ in range(3)] == [1, 2, 3]
    assert sessions.opened("2001:db8::1") == 1
    sessions.closed("192.0.2.1")
    assert (sessions.of("192.0.2.1"), sessions.of("2001:db8::1"), sessions.of("192.0.2.9")) \
        == (2, 1, 0)


def _processes(path, count):
    return [SharedClientSessions(path, count, index) for index in range(count)]


def test_shared_counts_a_clients_sessions_in_every_process(tmp_path):
    path = tmp_path / "smtp-client-sessions"
    one, two, three = _processes(path, 3)
    assert one.opened("192.0.2.1") == 1
    assert two.opened("192.0.2.1") == 2            # wherever its connections land
    assert three.opened("192.0.2.1") == 3
    assert three.opened("2001:db8::1") == 1        # another client counts apart
    one.closed("192.0.2.1")
    assert [p.of("192.0.2.1") for p in (one, two, three)] == [2, 2, 2]
    assert one.of("192.0.2.2") == 0


def test_a_process_started_again_forgets_the_sessions_it_had(tmp_path):
    # a listener that died took its connections with it; the pool starts it again
    path = tmp_path / "smtp-client-sessions"
    one, two = _processes(path, 2)
    for _ in range(4):
        two.opened("192.0.2.1")
    one.opened("192.0.2.1")
    two_again = SharedClientSessions(path, 2, 1)
    assert one.of("192.0.2.1") == two_again.of("192.0.2.1") == 1


def test_fewer_processes_later_ignore_the_counters_of_the_ones_gone(tmp_path):
    path = tmp_path / "smtp-client-sessions"
    old = _processes(path, 3)
    old[2].opened("192.0.2.1")
    new = _processes(path, 2)
    assert new[0].of("192.0.2.1") == 0


def test_each_file_has_its_own_random_key(tmp_path):
    # the slot of an address cannot be known beforehand (rule 4)
    first = SharedClientSessions(tmp_path / "a", 1, 0)
    second = SharedClientSessions(tmp_path / "b", 1, 0)
    again = SharedClientSessions(tmp_path / "a", 1, 0)
    assert first._key != second._key and first._key == again._key


@pytest.mark.parametrize("limit, processes, parts", [
    (8, 2, [4, 4]), (5, 2, [3, 2]), (8, 3, [3, 3, 2]), (1, 2, [1, 1]), (8, 1, [8])])
def test_a_process_counting_alone_gives_a_client_its_part_of_the_limit(limit, processes,
                                                                        parts):
    # shared out as smtp.max_incoming is: the parts add up to the limit, at least 1 each
    assert [part_of(limit, processes, index) for index in range(processes)] == parts


async def test_a_process_counting_alone_counts_together_again_once_it_can(tmp_path,
                                                                          autojump_clock):
    """review21d R3: a listener process that could not make the file (a full disk) counted
    alone until the core restarted, the per-client limit whole in each process, so one host
    could take every session. Here the file cannot be made as long as run/ is missing."""
    path = tmp_path / "run" / "smtp-client-sessions"
    told = []
    sessions = AloneClientSessions(lambda: SharedClientSessions(path, 2, 1),
                                   lambda: told.append("together"))
    assert [sessions.opened("192.0.2.1") for _ in range(2)] == [1, 2]
    assert not sessions.is_together
    path.parent.mkdir()
    await trio.sleep(RETRY_SECONDS / 2)
    assert sessions.opened("192.0.2.1") == 3            # not tried again yet
    assert not sessions.is_together and told == []
    await trio.sleep(RETRY_SECONDS / 2)
    assert sessions.opened("192.0.2.1") == 4            # 3 alone, 1 together
    assert sessions.is_together and told == ["together"]
    other = SharedClientSessions(path, 2, 0)
    assert other.opened("192.0.2.1") == 2               # it sees the one counted together
    assert sessions.of("192.0.2.1") == 5
    for _ in range(3):                                  # the ones counted alone first
        sessions.closed("192.0.2.1")
    assert (sessions.of("192.0.2.1"), other.of("192.0.2.1")) == (2, 2)
    sessions.closed("192.0.2.1")
    assert (sessions.of("192.0.2.1"), other.of("192.0.2.1")) == (1, 1)
