"""core/notify.py memory_available_fraction: what the Low Memory alert measures. Read from
files laid out as /proc and a cgroup v2 tree are (the test's own, in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.notify import memory_available_fraction

GiB = 1 << 30


def _proc(tmp_path: Path, available_kib: int, total_kib: int, group: str | None) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True, exist_ok=True)   # again: the figures change
    (proc / "meminfo").write_text(f"MemTotal:       {total_kib} kB\n"
                                  f"MemFree:        {available_kib // 2} kB\n"
                                  f"MemAvailable:   {available_kib} kB\n")
    if group is not None:
        (proc / "self" / "cgroup").write_text(f"4:memory:/old-v1\n0::{group}\n")
    return proc


def _group(cgroups: Path, name: str, limit: str, current: int, inactive_file: int = 0) -> None:
    path = cgroups / name.lstrip("/")
    path.mkdir(parents=True, exist_ok=True)
    (path / "memory.max").write_text(limit + "\n")
    (path / "memory.current").write_text(f"{current}\n")
    (path / "memory.stat").write_text(f"anon 1\nfile 2\ninactive_file {inactive_file}\n")


def test_the_host_figure_without_a_control_group(tmp_path):
    proc = _proc(tmp_path, available_kib=3 * 1024 * 1024, total_kib=4 * 1024 * 1024, group=None)
    assert memory_available_fraction(proc, tmp_path / "cgroup") == 0.75


def test_a_limit_of_its_control_group_is_what_counts_when_it_is_tighter(tmp_path):
    # limits tester C3: under a systemd MemoryMax= the kernel kills Mailmoat long before the
    # host runs low, and the alert, reading the host alone, never came
    cgroups = tmp_path / "cgroup"
    proc = _proc(tmp_path, available_kib=20 * 1024 * 1024, total_kib=24 * 1024 * 1024,
                 group="/system.slice/mailmoat.service")
    _group(cgroups, "/system.slice/mailmoat.service", str(2 * GiB), current=2 * GiB - GiB // 8,
           inactive_file=GiB // 8)
    _group(cgroups, "/system.slice", "max", current=3 * GiB)
    assert memory_available_fraction(proc, cgroups) == pytest.approx(0.125)


def test_a_limit_higher_up_counts_too_and_page_cache_is_available(tmp_path):
    cgroups = tmp_path / "cgroup"
    proc = _proc(tmp_path, available_kib=20 * 1024 * 1024, total_kib=24 * 1024 * 1024,
                 group="/box/mailmoat")
    _group(cgroups, "/box/mailmoat", "max", current=GiB)
    _group(cgroups, "/box", str(4 * GiB), current=4 * GiB, inactive_file=2 * GiB)
    assert memory_available_fraction(proc, cgroups) == pytest.approx(0.5)


def test_nothing_readable_is_no_alarm(tmp_path):
    assert memory_available_fraction(tmp_path / "no-proc", tmp_path / "no-cgroup") == 1.0
