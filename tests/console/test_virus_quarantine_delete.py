"""Antivirus Policy › Virus Quarantine: the Subject column and Delete (findings av.md §4:
the page had neither, so an administrator could not tell copies apart nor remove one).

Delete is an administrator's CSRF-protected POST that asks the core to delete the selected
copies (a command, as the hold queue's actions are: the console never writes the spool);
its object_modified event names them, and the page stops listing them at once. The core's
side is tests/integration/test_virus_quarantine_retention.py."""

from __future__ import annotations

import pytest

from shared.events import Action
from shared.spool import SUBJECT_META, Envelope, Spool

EICAR_MAIL = (b"From: a@outside.test\r\nTo: user@local.test\r\nSubject: infected\r\n\r\n"
              b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*\r\n")
PAGE = "/antivirus/quarantine"
DELETE = "/antivirus/quarantine/delete"


def _quarantine(home, queue_id: str, subject: str) -> str:
    """A copy as the core keeps one (core/scan/service.py), through the spool's own code."""
    spool = Spool(home.spool)
    incoming = spool.open_incoming(queue_id)
    incoming.write(EICAR_MAIL)
    envelope = Envelope.new(queue_id, "a@outside.test", ["user@local.test"],
                            meta={SUBJECT_META: subject, "kind": "virus_quarantine",
                                  "virus": ["Mailmoat.Test.EICAR"], "files": ["eicar.com"],
                                  "actions": ["file_deleted"], "quarantined_at": 1_800_000_000})
    spool.commit([incoming.prepare(envelope)], "quarantine/virus")
    return queue_id


@pytest.fixture
def copies(home) -> list[str]:
    return [_quarantine(home, "0AAAAAAAAAAA", "Invoice <March>"),
            _quarantine(home, "0BBBBBBBBBBB", "Your parcel")]


def _in_spool(home) -> list[str]:
    return sorted(p.name for p in home.queue("quarantine/virus").iterdir())


def test_the_list_has_a_subject_column_and_a_checkbox_per_copy(admin, copies):
    page = admin.get(PAGE).get_data(as_text=True)
    assert '<th scope="col">Subject</th>' in page
    assert "Invoice &lt;March&gt;" in page and "Your parcel" in page   # escaped, as sent
    for queue_id in copies:
        assert f'name="ids" value="{queue_id}"' in page
    assert f'action="{DELETE}"' in page and 'name="csrf_token"' in page


def test_delete_asks_the_core_for_the_selected_copies_and_names_them(admin, home, copies):
    response = admin.post(DELETE, {"ids": [copies[0]], "confirm": "1"})   # as confirmed
    assert response.status_code == 302 and response.headers["Location"].endswith(PAGE)
    [command] = admin.commands()
    assert (command["kind"], command["args"], command["requested_by"], command["state"]) == \
        ("virus_quarantine.delete", {"ids": [copies[0]]}, "admin", "pending")
    event = admin.events(Action.OBJECT_MODIFIED)[-1]
    assert event["data"]["user"] == "admin" and event["client_ip"] == "127.0.0.1"
    assert event["data"]["command"] == "virus_quarantine.delete"
    assert event["data"]["args"] == {"ids": [copies[0]]}
    assert _in_spool(home) == sorted(copies)        # the core deletes, not the console
    page = admin.get(PAGE).get_data(as_text=True)
    assert "within a few seconds" in page
    assert "1 message(s)" in page and copies[0] not in page and copies[1] in page


@pytest.mark.parametrize("ids, message", [
    ([], "select the messages to delete"),
    (["../../mailmoat.db"], "is not a queue id"),
])
def test_a_bad_selection_deletes_nothing_and_says_why(admin, home, copies, ids, message):
    response = admin.post(DELETE, {"ids": ids}, follow_redirects=True)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert admin.commands() == [] and _in_spool(home) == sorted(copies)


def test_delete_without_the_csrf_token_is_refused(admin, home, copies):
    assert admin.post(DELETE, {"ids": [copies[0]]}, csrf=False).status_code == 400
    assert admin.commands() == []


def test_report_only_administrator_gets_403_and_an_unauthorized_access_event(
        reporter, home, copies):
    assert reporter.post(DELETE, {"ids": [copies[0]]}).status_code == 403
    assert reporter.events(Action.UNAUTHORIZED_ACCESS)[-1]["data"] == {
        "user": "report", "path": DELETE}
    assert reporter.commands() == [] and _in_spool(home) == sorted(copies)


def test_anonymous_delete_is_sent_to_logon(console, home, copies):
    response = console.post(DELETE, {"ids": [copies[0]]})
    assert response.status_code == 302 and "/logon" in response.headers["Location"]
    assert console.commands() == []
