"""A console session that times out gets its `logoff` (reason timeout, stamped with its last
request + `admin.timeout_minutes`) from the console's job about once a minute, without a
request and without a later logon (fixer19 F3: an administrator who closed the browser on
Friday at 17:00 had no logoff in the reports until someone logged on on Monday; guide Table
7-5 "the date and time of logoff").

The real console app with its FakeClock, and the real scheduler of console.jobs with the
app's event writer and sessions; the job's function is called as the scheduler calls it
(its `func`), since its interval is a real minute. Real SQLite events.
"""

from __future__ import annotations

import pytest

from console.jobs import SESSIONS_CHECK_SECONDS, SESSIONS_JOB, schedule_jobs
from shared import db
from shared.events import Action
from shared.settings_store import apply_changes

from .conftest import Console

TIMEOUT_SECONDS = 5 * 60        # admin.timeout_minutes' default


@pytest.fixture
def jobs(app, home, clock):
    """The console process's scheduler as `mailmoat console` starts it, on this app."""
    ctx = app.extensions["mailmoat"]
    jobs = schedule_jobs(home, ctx.events, clock, ctx.sessions)
    yield jobs
    jobs.shutdown()


def _run_job(jobs) -> None:
    """What the scheduler does every SESSIONS_CHECK_SECONDS."""
    jobs.scheduler.get_job(SESSIONS_JOB).func()


def _logoffs(console) -> list[dict]:
    return console.events(Action.LOGOFF)


def test_the_scheduler_ends_timed_out_sessions_about_once_a_minute(jobs):
    job = jobs.scheduler.get_job(SESSIONS_JOB)
    assert job is not None
    assert job.trigger.interval.total_seconds() == SESSIONS_CHECK_SECONDS <= 60


def test_the_job_writes_a_timed_out_sessions_logoff_without_a_request(admin, jobs, clock):
    assert admin.get("/status/").status_code == 200
    last_request = clock.now()
    clock.advance(TIMEOUT_SECONDS)                      # idle, not yet past the timeout
    _run_job(jobs)
    assert _logoffs(admin) == []
    clock.advance(SESSIONS_CHECK_SECONDS)               # the next run, past the timeout
    _run_job(jobs)
    [ended] = _logoffs(admin)
    assert ended["data"] == {"user": "admin", "reason": "timeout"}
    assert ended["result"] == "succeeded"
    assert ended["client_ip"] == "127.0.0.1"
    assert ended["time"] == last_request + TIMEOUT_SECONDS
    clock.advance(SESSIONS_CHECK_SECONDS)               # runs after it write nothing more
    _run_job(jobs)
    assert len(_logoffs(admin)) == 1


def test_a_session_the_job_ended_is_logged_off_at_its_next_request_without_a_second_logoff(
        app, home, admin, jobs, clock):
    assert admin.get("/status/").status_code == 200
    clock.advance(TIMEOUT_SECONDS + SESSIONS_CHECK_SECONDS)
    _run_job(jobs)
    assert len(_logoffs(admin)) == 1
    response = admin.get("/status/")
    assert response.status_code == 302 and "/logon" in response.headers["Location"]
    # told why, as a request that finds its own timeout is (the job ends most sessions
    # before their browser comes back)
    assert "Your session ended after 5 minute(s) without activity" in admin.get(
        "/logon").get_data(as_text=True)
    # nor does the next logon, elsewhere or in the same browser, write one
    assert Console(app, home).logon().status_code == 302
    assert admin.logon().status_code == 302
    [ended] = _logoffs(admin)
    assert ended["data"]["reason"] == "timeout"


def test_a_request_that_finds_its_session_ended_by_the_job_meanwhile_writes_no_logoff(
        app, admin, jobs, clock):
    """The job runs between the request's loading its session and its idle check (another
    thread): the request still ends as timed out, and the logoff is the job's one."""
    assert admin.get("/status/").status_code == 200
    last_request = clock.now()
    clock.advance(TIMEOUT_SECONDS + 1)
    sessions = app.extensions["mailmoat"].sessions
    loaded = sessions.get

    def get_then_job_runs(session_id):
        record = loaded(session_id)
        _run_job(jobs)
        return record

    sessions.get = get_then_job_runs
    try:
        response = admin.get("/status/")
    finally:
        sessions.get = loaded
    assert response.status_code == 302 and "/logon" in response.headers["Location"]
    [ended] = _logoffs(admin)
    assert ended["data"]["reason"] == "timeout"
    assert ended["time"] == last_request + TIMEOUT_SECONDS


def test_the_job_reads_the_timeout_setting_at_each_run(admin, home, jobs, clock):
    conn = db.connect(home.db)
    try:
        apply_changes(conn, {"admin.timeout_minutes": 30})
    finally:
        conn.close()
    assert admin.get("/status/").status_code == 200
    last_request = clock.now()
    clock.advance(TIMEOUT_SECONDS + SESSIONS_CHECK_SECONDS)
    _run_job(jobs)
    assert _logoffs(admin) == []
    clock.advance(30 * 60)
    _run_job(jobs)
    [ended] = _logoffs(admin)
    assert ended["time"] == last_request + 30 * 60



def test_a_run_of_the_job_writes_no_line_to_the_console_log(jobs, caplog):
    """APScheduler's two INFO lines per run would be 2,880 a day (review19 R2)."""
    import datetime as dt
    import threading

    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED

    ran = threading.Event()
    job = jobs.scheduler.get_job(SESSIONS_JOB)
    jobs.scheduler.add_listener(lambda event: ran.set(), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    with caplog.at_level("INFO"):
        job.modify(next_run_time=dt.datetime.now(dt.timezone.utc))
        assert ran.wait(30)
    assert [r.getMessage() for r in caplog.records
            if r.name.startswith("apscheduler.executors")] == []
