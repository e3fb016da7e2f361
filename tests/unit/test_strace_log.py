"""The strace reader the durability test relies on: a call interrupted by another thread's
line is joined with its resumed half and counts where it completed."""

from tests.support.strace_log import completed_calls

TRACE = """\
25974 fsync(15</spool/fast> <unfinished ...>
25968 <... sendto resumed>)             = 1
25974 <... fsync resumed>)              = 0
25969 sendto(12<socket:[1000082]>, "250 2.0.0 OK: queued as X\\r\\n", 31, 0, NULL, 0) = 31
25975 rename("/a", "/b") = -1 ENOENT (No such file or directory)
"""


def test_resumed_call_is_joined_and_ordered_by_completion():
    calls = completed_calls(TRACE)
    assert [c.name for c in calls] == ["sendto", "fsync", "sendto", "rename"]
    fsync = calls[1]
    assert fsync.pid == 25974 and fsync.ok
    assert fsync.text.startswith("15</spool/fast>)")       # as if printed in one line
    assert not calls[3].ok
