"""ServerConnection.last_command: the verb of the last command line read, which a
connection_closed event names (guide Table 7-6; reports18 B1). The verb alone: an AUTH
argument is a secret, and a line that is no command is named by what it is."""

from __future__ import annotations

from tests.unit.smtp.test_protocol import drive, new_conn


def test_last_command_is_the_verb_of_the_last_line_read_and_never_its_argument():
    conn = new_conn()
    assert conn.last_command is None
    drive(conn, b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n")
    assert conn.last_command == "MAIL"
    drive(conn, b"AUTH PLAIN c2VjcmV0\r\n")
    assert conn.last_command == "AUTH"
    drive(conn, b"XYZZY plugh\r\n")
    assert conn.last_command == "(unknown command)"
    drive(conn, b"NOOP " + b"x" * 600 + b"\r\n")
    assert conn.last_command == "(overlong line)"
