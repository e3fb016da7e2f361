"""Logon, logoff, failed-logon counting, idle timeout, CSRF, HTTPS for logons, headers."""

from __future__ import annotations

from shared.cli import main
from shared.events import Action

from .conftest import ADMIN_PASSWORD, REPORT_PASSWORD, Console


def test_logon_writes_event_with_client_ip_and_opens_status(console):
    response = console.logon()
    assert response.status_code == 302 and response.headers["Location"] == "/status/"
    event = console.events(Action.LOGON)[-1]
    assert (event["result"], event["client_ip"], event["data"]) == \
        ("succeeded", "127.0.0.1", {"user": "admin"})
    assert event["process"] == "console"
    assert console.get("/status/").status_code == 200


def test_logoff_writes_event_and_ends_session(admin):
    response = admin.logoff()
    assert response.status_code == 302
    event = admin.events(Action.LOGOFF)[-1]
    assert event["data"]["user"] == "admin" and event["client_ip"] == "127.0.0.1"
    assert "/logon" in admin.get("/status/").headers["Location"]


def test_logoff_needs_post(admin):
    assert admin.get("/logoff").status_code == 405


def test_wrong_password_is_refused_with_a_message(console):
    response = console.logon("admin", "wrong")
    assert response.status_code == 200
    assert b"The user name or password is incorrect." in response.data
    assert console.events(Action.LOGON)[-1]["result"] == "failed"
    assert "/logon" in console.get("/status/").headers["Location"]


def test_passwords_are_case_sensitive(console):
    assert console.logon("admin", ADMIN_PASSWORD.upper()).status_code == 200


def test_password_longer_than_32_characters_is_refused(console):
    assert console.logon("admin", ADMIN_PASSWORD + "x" * 40).status_code == 200


def test_third_failure_and_each_after_write_failed_logon_alert_event(console):
    for _ in range(2):
        console.logon("admin", "wrong")
    assert console.events(Action.FAILED_LOGON) == []
    console.logon("admin", "wrong")
    console.logon("admin", "wrong")
    alerts = console.events(Action.FAILED_LOGON)
    assert [a["data"] for a in alerts] == [{"account": "admin", "count": 3},
                                           {"account": "admin", "count": 4}]
    assert alerts[0]["client_ip"] == "127.0.0.1"


def test_failures_are_counted_per_account_name(console):
    for name in ("admin", "admin", "report", "nobody"):
        console.logon(name, "wrong")
    assert console.events(Action.FAILED_LOGON) == []
    console.logon("nobody", "wrong")
    console.logon("nobody", "wrong")
    assert [a["data"] for a in console.events(Action.FAILED_LOGON)] == [
        {"account": "nobody", "count": 3}]


def test_successful_logon_resets_the_count(console):
    for _ in range(2):
        console.logon("admin", "wrong")
    assert console.logon().status_code == 302
    console.logoff()
    for _ in range(2):
        console.logon("admin", "wrong")
    assert console.events(Action.FAILED_LOGON) == []


def test_report_account_cannot_log_on_until_enabled(console):
    console.set(admin__report_only__password=REPORT_PASSWORD)
    assert console.logon("report", REPORT_PASSWORD).status_code == 200
    console.set(admin__report_only__enabled=True)
    assert console.logon("report", REPORT_PASSWORD).status_code == 302


def test_disabling_report_account_ends_its_sessions(reporter):
    reporter.set(admin__report_only__enabled=False)
    assert "/logon" in reporter.get("/status/").headers["Location"]


# A1 (operations findings): resetting or changing a password left the sessions that had
# logged on with the old one open until they idled out.
def test_reset_admin_password_ends_sessions_logged_on_before(admin):
    assert admin.get("/configuration/accounts").status_code == 200
    assert main(["init", "--home", str(admin.home.root), "--reset-admin-password",
                 "--admin-password", "N3w-pass"]) == 0
    response = admin.get("/configuration/accounts")
    assert response.status_code == 302 and "/logon" in response.headers["Location"]
    [logoff] = admin.events(Action.LOGOFF)[-1:]
    assert logoff["result"] == "succeeded" and logoff["data"]["reason"] == "password_changed"
    assert b"password of this account was changed" in admin.get("/logon").data
    assert admin.logon("admin", "N3w-pass").status_code == 302
    assert admin.get("/configuration/accounts").status_code == 200


def test_config_set_admin_password_ends_sessions(admin):
    assert main(["config", "set", "--home", str(admin.home.root), "admin.password",
                 "Other-pass7"]) == 0
    assert admin.get("/status/").status_code == 302


def test_password_change_in_console_ends_other_sessions_not_its_own(app, home, admin):
    other = Console(app, home)
    assert other.logon().status_code == 302
    response = admin.post("/configuration/accounts/password/admin", {
        "admin-new_password": "Changed-pw5", "admin-confirm": "Changed-pw5"})
    assert response.status_code == 302
    assert admin.get("/configuration/accounts").status_code == 200
    assert "/logon" in other.get("/status/").headers["Location"]


def test_report_password_change_ends_report_sessions_only(admin, reporter):
    response = admin.post("/configuration/accounts/password/report", {
        "report-new_password": "Changed-rp6", "report-confirm": "Changed-rp6"})
    assert response.status_code == 302
    assert "/logon" in reporter.get("/status/").headers["Location"]
    assert admin.get("/configuration/accounts").status_code == 200
    assert reporter.logon("report", "Changed-rp6").status_code == 302


def test_session_expires_after_idle_timeout(admin, clock):
    clock.advance(4 * 60)
    assert admin.get("/status/").status_code == 200   # activity restarts the timer
    clock.advance(4 * 60)
    assert admin.get("/status/").status_code == 200
    clock.advance(5 * 60 + 1)
    response = admin.get("/status/")
    assert response.status_code == 302 and "/logon" in response.headers["Location"]
    [logoff] = admin.events(Action.LOGOFF)[-1:]
    assert logoff["result"] == "succeeded" and logoff["data"]["reason"] == "timeout"
    assert b"without activity" in admin.get("/logon").data


def test_idle_timeout_follows_the_setting_for_both_roles(reporter, clock):
    reporter.set(admin__timeout_minutes=1)
    clock.advance(59)
    assert reporter.get("/status/").status_code == 200
    clock.advance(61)
    assert reporter.get("/status/").status_code == 302


def test_logon_without_csrf_token_is_rejected(console):
    response = console.post("/logon", {"username": "admin", "password": ADMIN_PASSWORD},
                            csrf=False)
    assert response.status_code == 400
    assert b"security token" in response.data
    assert console.events(Action.LOGON) == []


def test_settings_post_with_wrong_csrf_token_changes_nothing(admin):
    response = admin.post("/configuration/setup", {"smtp__max_incoming": "99",
                                                   "csrf_token": "forged"})
    assert response.status_code == 400
    assert admin.settings()["smtp.max_incoming"] == 15


def test_csrf_token_of_another_session_is_rejected(admin, app, home):
    other = Console(app, home)
    foreign = other.token()
    response = admin.post("/configuration/setup", {"smtp__max_incoming": "99",
                                                   "csrf_token": foreign})
    assert response.status_code == 400


def test_logon_does_not_follow_offsite_next(console):
    response = console.post("/logon?next=//evil.example/", {
        "username": "admin", "password": ADMIN_PASSWORD, "next": "//evil.example/"})
    assert response.headers["Location"] == "/status/"


def test_logon_follows_local_next(console):
    response = console.post("/logon", {"username": "admin", "password": ADMIN_PASSWORD,
                                       "next": "/configuration/routing"})
    assert response.headers["Location"] == "/configuration/routing"


def test_https_logons_redirects_logon_and_password_pages_to_https(console):
    assert console.logon().status_code == 302            # over HTTP, before the switch
    console.set(https__logons=True)
    response = console.get("/configuration/accounts")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://localhost:8043/configuration/accounts"
    assert console.get("/configuration/setup").status_code == 200   # other pages stay on HTTP
    anonymous = Console(console.app, console.home)
    response = anonymous.get("/logon")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://localhost:8043/logon"
    secure = Console(console.app, console.home, base_url="https://localhost:8043")
    assert secure.get("/logon").status_code == 200
    assert secure.logon().status_code == 302
    assert secure.get("/configuration/accounts").status_code == 200
    # the session of the HTTPS logon is not used over HTTP (console-security finding 2)
    response = secure.client.get("/configuration/setup", base_url="http://localhost")
    assert response.status_code == 302 and "/logon" in response.headers["Location"]
    assert secure.get("/configuration/setup").status_code == 200


def test_security_headers_on_every_response(console):
    for url in ("/logon", "/status/", "/nope"):
        headers = console.get(url).headers
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_session_cookie_is_http_only(console):
    console.logon()
    cookie = console.client.get_cookie("mailmoat_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert not cookie.secure             # HTTP's cookie; HTTPS has its own, Secure one


def test_no_inline_script_or_style_in_pages(admin):
    for url in ("/logon", "/status/", "/configuration/setup", "/configuration/routing"):
        html = admin.get(url).get_data(as_text=True)
        assert "<script" not in html and "style=" not in html and "<style" not in html


def test_unknown_page_is_a_plain_404(admin):
    response = admin.get("/no/such/page")
    assert response.status_code == 404
    assert b"There is no such page." in response.data


def test_a_too_large_post_gets_the_413_page_when_logged_on(admin):
    # a 300,000-line list pasted into the whitelist: the 413 page drew the layout, whose
    # log-off form read the body again, and the error handler ended as a bare 500
    big = "\n".join(f"user{i}@example.test" for i in range(150_000))
    response = admin.post("/antispam/whitelist", {"entries": big})
    assert response.status_code == 413
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and response.headers["X-Request-Id"] in body
    assert "larger than the console accepts" in body and "nothing was saved" in body


def test_an_ipv4_client_of_the_dual_stack_listener_is_recorded_as_ipv4(console):
    # the console listens dual-stack: an IPv4 client arrives as ::ffff:a.b.c.d
    console.post("/logon", {"username": "admin", "password": "wrong"},
                 environ_base={"REMOTE_ADDR": "::ffff:192.0.2.7"})
    console.post("/logon", {"username": "admin", "password": "wrong"},
                 environ_base={"REMOTE_ADDR": "2001:db8::7"})
    assert [e["client_ip"] for e in console.events("logon")] == ["192.0.2.7", "2001:db8::7"]


def test_unexpected_error_shows_request_id_not_traceback(app, home):
    def broken():
        raise RuntimeError("secret internals /etc/passwd")
    from console.roles import public
    app.add_url_rule("/broken-for-test", "broken", public(broken))
    client = Console(app, home)
    response = client.get("/broken-for-test")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "secret internals" not in body and "Traceback" not in body
    assert response.headers["X-Request-Id"] in body
