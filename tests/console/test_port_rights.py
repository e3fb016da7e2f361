"""Configuration › Setup and ports below 1024: whether one may be bound is asked of the
running core (its status snapshot), not of the console process (docs tester 14, B3: the
check test-bound as the caller, so a console or CLI run as root accepted port 25 for a core
running as `mailmoat`, which then could not listen)."""

from __future__ import annotations

import socket

from shared import db
from shared.ports import PRIVILEGED_RULE, may_bind_privileged_ports, privileged_port_start
from shared.status import STALE_AFTER_SECONDS, new_snapshot, write_snapshot

from .test_configuration import _form_fields


def _core_says(admin, clock, may_bind: bool) -> None:
    """A status snapshot as the core writes it (core/status.py), with its rights."""
    conn = db.connect(admin.home.db)
    try:
        write_snapshot(conn, new_snapshot(started_at=clock.now(),
                                          may_bind_privileged_ports=may_bind),
                       now=clock.now())
    finally:
        conn.close()


def _privileged_port() -> int:
    """A port below 1000: one this process can bind (so free), or else the first it may
    not bind at all, free or not. One of the second kind is refused for the rights before
    anything asks whether it is in use (shared/ports.py `port_problem`)."""
    for port in range(min(privileged_port_start(), 1000) - 1, 600, -1):
        try:
            with socket.socket() as probe:
                probe.bind(("0.0.0.0", port))
        except PermissionError:
            return port             # not ours to try; nobody is asked to bind it below
        except OSError:
            continue
        return port
    raise AssertionError("no port below 1000 is free")


def _save_smtp_port(admin, port: int):
    data = _form_fields(admin, "/configuration/setup")
    data["smtp__port"] = str(port)
    return admin.post("/configuration/setup", data)


def test_a_port_the_running_core_may_not_bind_is_refused_though_the_console_could(admin,
                                                                                  clock):
    _core_says(admin, clock, may_bind=False)
    port = _privileged_port()
    response = _save_smtp_port(admin, port)
    assert response.status_code == 200
    assert PRIVILEGED_RULE.format(port=port, who="the running core") in \
        response.get_data(as_text=True)
    assert admin.settings()["smtp.port"] == 25


def test_with_no_core_running_the_consoles_own_rights_answer(admin, clock):
    _core_says(admin, clock, may_bind=False)
    clock.advance(STALE_AFTER_SECONDS + 1)       # the core has stopped since
    port = _privileged_port()
    response = _save_smtp_port(admin, port)
    if may_bind_privileged_ports():
        assert response.status_code == 302
        assert admin.settings()["smtp.port"] == port
    else:
        assert PRIVILEGED_RULE.format(port=port, who="this user (no core is running to ask)") \
            in response.get_data(as_text=True)
        assert admin.settings()["smtp.port"] == 25
