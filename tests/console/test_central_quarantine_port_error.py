"""Each bad av.central_quarantine field (host, port, mailbox) is said beside its own box, as a
bad default-route port is beside Port (settings20 C2: the schema words it "port: …", an object
with a mailbox too, and the console put it beside Host, marked Host invalid and focused it;
review20e R1: the same for the mailbox, and a bad port and mailbox together went beside Port
as one text)."""

from .test_configuration import _form_fields
from .test_error_fields import _described, _elements, _focused

HOST, PORT = "av__central_quarantine___host", "av__central_quarantine___port"


def test_a_bad_central_quarantine_port_marks_port_not_host(admin):
    data = _form_fields(admin, "/antivirus/")
    data[HOST], data[PORT] = "127.0.0.1", "0"
    response = admin.post("/antivirus/", data)
    assert response.status_code == 200
    elements = _elements(response)
    assert elements[PORT]["attrs"].get("aria-invalid") == "true"
    assert "port: must be between 1 and 65535" in _described(elements, PORT)
    assert "aria-invalid" not in elements[HOST]["attrs"]
    assert _focused(elements) == [PORT]
    assert admin.settings()["av.central_quarantine"] is None


MAILBOX = "av__central_quarantine___mailbox"
MAILBOX_RULE = "mailbox: must be a full email address such as admin@example.com"


def _posted(admin, host: str, port: str, mailbox: str) -> dict:
    data = _form_fields(admin, "/antivirus/")
    data[HOST], data[PORT], data[MAILBOX] = host, port, mailbox
    response = admin.post("/antivirus/", data)
    assert response.status_code == 200
    assert admin.settings()["av.central_quarantine"] is None
    return _elements(response)


def test_a_bad_central_quarantine_mailbox_marks_mailbox_not_host(admin):
    # review20e R1: a rule other than the port's went beside Host, which took the focus
    elements = _posted(admin, "127.0.0.1", "25", "not an address")
    assert elements[MAILBOX]["attrs"].get("aria-invalid") == "true"
    assert MAILBOX_RULE in _described(elements, MAILBOX)
    assert "aria-invalid" not in elements[HOST]["attrs"]
    assert "aria-invalid" not in elements[PORT]["attrs"]
    assert _focused(elements) == [MAILBOX]


def test_a_bad_port_and_mailbox_at_once_each_mark_their_own_box(admin):
    # review20e R1: both rules went beside Port as one text "port: …; mailbox: …"
    elements = _posted(admin, "127.0.0.1", "0", "bad")
    port, mailbox = _described(elements, PORT), _described(elements, MAILBOX)
    assert "port: must be between 1 and 65535" in port and MAILBOX_RULE not in port
    assert MAILBOX_RULE in mailbox and "port:" not in mailbox
    assert elements[PORT]["attrs"].get("aria-invalid") == "true"
    assert elements[MAILBOX]["attrs"].get("aria-invalid") == "true"
    assert "aria-invalid" not in elements[HOST]["attrs"]
    assert _focused(elements) == [PORT]


def test_a_bad_host_and_mailbox_at_once_each_mark_their_own_box(admin):
    elements = _posted(admin, "bad host!", "25", "bad")
    assert "host:" in _described(elements, HOST)
    assert MAILBOX_RULE not in _described(elements, HOST)
    assert MAILBOX_RULE in _described(elements, MAILBOX)
    assert "aria-invalid" not in elements[PORT]["attrs"]
    assert _focused(elements) == [HOST]
