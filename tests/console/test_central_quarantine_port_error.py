"""A bad av.central_quarantine port is said beside Port, as a bad default-route port is
(settings20 C2: the schema words it "port: …", an object with a mailbox too, and the console
put it beside Host, marked Host invalid and focused it)."""

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
