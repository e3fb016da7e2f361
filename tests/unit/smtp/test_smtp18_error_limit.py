"""The sans-IO server's hard error limit (core/smtp/protocol.py Rule 2a) and ESMTP
parameters after HELO (smtp18 B1, C4).

smtp18 B1: only unknown commands counted toward a limit; 20,000 RCPTs without a MAIL were
20,000 replies 503 and 20,000 protocol_violation events from one connection, which stayed
open. Now every error counts (Postfix's smtpd_hard_error_limit, 20): the 21st is answered
421 4.7.0 and closes the session; an accepted message starts the count again.
smtp18 C4: SMTPUTF8, SIZE and BODY were taken after HELO, which offers no extension.
"""

from __future__ import annotations

import pytest

from core.smtp import R421_TOO_MANY_ERRORS, R550_RELAY_DENIED, State, ViolationKind
from core.smtp.events import MailFrom, RcptTo
from tests.unit.smtp.test_protocol import EHLO, MODES, accept_all, codes, drive, new_conn, \
    violations

TOO_MANY = R421_TOO_MANY_ERRORS.to_bytes()


@pytest.mark.parametrize("mode", MODES)
def test_bad_sequence_commands_count_and_the_21st_closes_with_421(mode):
    conn = new_conn()
    events, out = drive(conn, EHLO + b"RCPT TO:<x@y.test>\r\n" * 30, mode)
    assert codes(out) == [250] + [503] * 20 + [421]
    assert out.endswith(TOO_MANY)
    kinds = [v.kind for v in violations(events)]
    assert kinds == [ViolationKind.BAD_SEQUENCE] * 20 + [ViolationKind.TOO_MANY_ERRORS]
    assert "over the limit of 20" in violations(events)[-1].detail
    assert conn.state is State.CLOSED


def test_errors_of_every_kind_count_together():
    conn = new_conn()
    junk = (b"DATA\r\n" + b"FOO\r\n" + b"VRFY\r\n" + b"MAIL FROM:bad\r\n" + b"RSET\r\n") * 5
    # after 20 errors a valid command is still answered; the next error is not
    _, out = drive(conn, EHLO + junk + b"NOOP\r\nMAIL FROM:bad\r\nNOOP\r\n")
    assert codes(out) == [250] + [503, 500, 501, 501, 250] * 5 + [250, 421]


def test_the_apps_refusals_count_and_its_reply_past_the_limit_is_421():
    def refuse_recipients(event):
        return R550_RELAY_DENIED if isinstance(event, RcptTo) else accept_all(event)

    conn = new_conn()
    rcpts = b"RCPT TO:<x@victim.test>\r\n" * 20
    _, out = drive(conn, EHLO + b"MAIL FROM:<a@b.test>\r\n" + rcpts, respond=refuse_recipients)
    assert codes(out) == [250, 250] + [550] * 20
    assert conn.errors == 20 and conn.errors_left == 0
    # what the session then does for the next refusal (core/smtp/session.py too_many_errors)
    _, out = drive(conn, b"RCPT TO:<x@victim.test>\r\n",
                   respond=lambda event: R421_TOO_MANY_ERRORS)
    assert out == TOO_MANY and conn.state is State.CLOSED


def test_an_accepted_message_starts_the_count_again():
    conn = new_conn()
    errors = b"RCPT TO:<x@y.test>\r\n" * 19
    message = b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nx\r\n.\r\n"
    _, out = drive(conn, EHLO + errors + message + errors + b"NOOP\r\n")
    assert codes(out) == [250] + [503] * 19 + [250, 250, 354, 250] + [503] * 19 + [250]
    assert conn.state is State.READY and conn.errors == 19


def test_replies_behind_a_refusal_and_past_the_recipient_limit_are_not_errors():
    # protocol.py Rules 7 and 8: a pipelining client broke no rule
    def refuse_mail(event):
        return R550_RELAY_DENIED if isinstance(event, MailFrom) else accept_all(event)

    conn = new_conn()
    _, out = drive(conn, EHLO + b"MAIL FROM:<a@b.test>\r\n" + b"RCPT TO:<c@d.test>\r\n" * 30
                   + b"DATA\r\n", respond=refuse_mail)
    assert codes(out) == [250, 550] + [503] * 31
    assert conn.errors == 1
    conn = new_conn(max_recipients=1)
    _, out = drive(conn, EHLO + b"MAIL FROM:<a@b.test>\r\n" + b"RCPT TO:<c@d.test>\r\n" * 30)
    assert codes(out) == [250, 250, 250] + [452] * 29
    assert conn.errors == 0


def test_the_unknown_command_rule_is_kept():
    conn = new_conn()
    events, out = drive(conn, b"FOO\r\n" * 25)
    assert codes(out) == [500] * 20 + [421]
    assert violations(events)[-1].kind is ViolationKind.TOO_MANY_UNKNOWN_COMMANDS


@pytest.mark.parametrize("params", [b" SMTPUTF8", b" SIZE=100", b" BODY=8BITMIME"])
def test_mail_parameters_after_helo_reply_555(params):
    conn = new_conn()
    events, out = drive(conn, b"HELO client.test\r\nMAIL FROM:<a@b.test>" + params + b"\r\n"
                        + b"MAIL FROM:<a@b.test>\r\n")
    assert codes(out) == [250, 555, 250]
    assert violations(events)[0].kind is ViolationKind.UNKNOWN_PARAMETER
    assert "after HELO" in violations(events)[0].detail


def test_mail_parameters_after_ehlo_are_taken_and_after_a_later_helo_not():
    conn = new_conn()
    _, out = drive(conn, EHLO + b"MAIL FROM:<a@b.test> SMTPUTF8 SIZE=10\r\nRSET\r\n"
                   + b"HELO client.test\r\nMAIL FROM:<a@b.test> SIZE=10\r\n")
    assert codes(out) == [250, 250, 250, 250, 555]
