"""The logoff of a session that timed out carries the time it timed out — its last request
plus `admin.timeout_minutes` — not the later time the console noticed, at the next logon or
at the session's own next request (guide Table 7-5 "the date and time of logoff"; reports18
B2: a session idle since 00:52 logged off at 01:01:26, the next logon's time). The app's
FakeClock moves the time; real SQLite events.
"""

from __future__ import annotations

from shared.events import Action

from .conftest import ADMIN_PASSWORD, Console

TIMEOUT_SECONDS = 5 * 60        # admin.timeout_minutes' default


def test_a_logon_writes_the_idle_sessions_logoff_at_its_timeout(app, home, admin, clock):
    assert admin.get("/status/").status_code == 200
    last_request = clock.now()
    clock.advance(TIMEOUT_SECONDS + 270)                # 4½ minutes past the timeout
    other = Console(app, home)
    assert other.post("/logon", {"username": "admin", "password": ADMIN_PASSWORD}
                      ).status_code == 302
    [ended] = admin.events(Action.LOGOFF)
    assert ended["data"]["reason"] == "timeout"
    assert ended["time"] == last_request + TIMEOUT_SECONDS
    [logon] = admin.events(Action.LOGON)[-1:]
    assert logon["time"] == clock.now()


def test_the_sessions_next_request_writes_its_logoff_at_its_timeout(admin, clock):
    assert admin.get("/status/").status_code == 200
    last_request = clock.now()
    clock.advance(TIMEOUT_SECONDS + 3600)
    response = admin.get("/status/")
    assert response.status_code == 302 and "/logon" in response.headers["Location"]
    [ended] = admin.events(Action.LOGOFF)
    assert ended["data"]["reason"] == "timeout"
    assert ended["time"] == last_request + TIMEOUT_SECONDS
