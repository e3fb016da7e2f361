"""URL tokens never fail on what a sender writes: a check that raised would hold innocent
mail, and with scan.unprocessable=deliver let spam past the heuristic engine (ARCHITECTURE
invariant 8). Found by the hostile-MIME run: `http://host:${PORT}/` in developers' mail."""

from __future__ import annotations

import pytest

from core.scan.antispam.tokenizer import tokens
from core.scan.antispam.training import view_of

ODD_URLS = [
    "http://example.com:$/x", "http://example.com:99999/x", "http://example.com:-1/",
    "http://example.com:8080/x", "http://127.0.0.1:${RSPAMD_PORT_DUMMY_HTTP}/redirect",
    "http://[::1/", "http://[zz]/", "http://a:b@c:d/", "http://%zz%/", "http://exa\u2100mple.com/",
    "http://" + "a." * 300 + "com/", "www.example.com:70000", "https://:80/", "http://@/",
]


@pytest.mark.parametrize("url", ODD_URLS)
def test_an_odd_url_gives_tokens_not_an_error(url):
    for body in (f"See {url} for the agenda.", f'<a href="{url}">agenda</a>'):
        kind = "text/html" if body.startswith("<") else "text/plain"
        raw = (f"From: a@example.com\r\nTo: b@example.net\r\nSubject: minutes\r\n"
               f"Content-Type: {kind}; charset=utf-8\r\n\r\n{body}\r\n").encode()
        assert "agenda" in tokens(view_of(raw))       # the body was read past the URL


def test_a_port_that_is_not_a_number_still_counts_as_a_port():
    raw = b"From: a@example.com\r\nSubject: x\r\n\r\nSee http://example.com:$/x today\r\n"
    assert "u:port" in tokens(view_of(raw))
