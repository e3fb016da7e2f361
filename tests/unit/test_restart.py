"""The restart rule of core/restart.py (SPEC §1), shared by `mailmoat run` and the core's
SMTP listener processes."""

from core.restart import HEALTHY_SECONDS, RESTART_MAX_SECONDS, RestartBackoff


def test_quick_deaths_wait_twice_as_long_each_time_up_to_a_minute():
    backoff = RestartBackoff()
    assert [backoff.after_exit(0.5) for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_healthy_run_starts_the_backoff_afresh():
    backoff = RestartBackoff()
    for _ in range(8):
        backoff.after_exit(1)
    assert backoff.after_exit(HEALTHY_SECONDS) == 1
    assert backoff.after_exit(HEALTHY_SECONDS - 1) == 2


def test_healthy_means_longer_than_the_longest_wait():
    assert HEALTHY_SECONDS > RESTART_MAX_SECONDS
