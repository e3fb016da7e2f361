"""A Host header whose characters make it no host name gets the documented 400 and an
http_protocol_violation event (console18 B4: werkzeug's `request.host` quietly made such a
header "", the page answered 200 and its HTTPS link and redirect read "https://:8043/…")."""

from __future__ import annotations

import pytest

from shared.events import Action
from tests.console import test_bad_requests as bad_requests
from tests.console.test_bad_requests import _REQUEST_ID, Console, _exchange, _request

# that module's served console and its fresh budget of violation events per test
served = bad_requests.served
fresh_violation_budget = bad_requests.fresh_violation_budget

BAD_CHARACTERS = {
    "a space": b"a b",
    "a path": b"evil.example/x",
    "an underscore": b"ex_ample.com",
    "a percent": b"%65vil",
    "user info": b"127.0.0.1:8003@evil.example",
}


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("host", BAD_CHARACTERS.values(), ids=BAD_CHARACTERS.keys())
def test_a_host_header_with_characters_no_host_name_has_gets_400(served, scheme, host):
    status, headers, body = _exchange(served, scheme, _request(b"/logon", host))
    assert status == 400 and "Bad request" in body
    assert "https://:" not in body
    assert _REQUEST_ID.search(body).group(1) == headers["x-request-id"]


def test_it_is_recorded_as_an_http_protocol_violation_naming_the_header(served):
    console = Console(served.app, served.home)
    before = len(console.events(Action.HTTP_PROTOCOL_VIOLATION))
    _exchange(served, "http", _request(b"/logon", b"a b"))
    events = console.events(Action.HTTP_PROTOCOL_VIOLATION)[before:]
    assert [(e["result"], e["info"]) for e in events] == \
        [("rejected", "400 Bad Request: the Host header 'a b' is not a host name "
                      "(GET '/logon')")]


def test_with_https_logons_on_no_redirect_to_an_empty_host(served):
    console = Console(served.app, served.home)
    console.set(https__logons=True)
    try:
        status, headers, _body = _exchange(served, "http", _request(b"/logon", b"a b"))
    finally:
        console.set(https__logons=False)
    assert status == 400 and "location" not in headers


def test_a_good_host_still_gets_the_page(served):
    status, _headers, body = _exchange(served, "http", _request(b"/logon", b"localhost:8003"))
    assert status == 200 and "https://localhost:" in body
