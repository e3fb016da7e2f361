"""The logon page over plain HTTP, with https.logons off (the default), says in one sentence
that the password crosses the network unencrypted and where to log on over HTTPS instead;
over HTTPS it says nothing of the kind.

The real server's case runs the console's two listeners on loopback (port 0) and follows
the link the HTTP page gives, over TLS.
"""

from __future__ import annotations

import html
import re
import ssl
import threading
import urllib.request

from console.serve import ConsoleServer

NOTE = re.compile(r'<p class="notice" id="plain-http-note">(.*?)</p>', re.S)
HTTPS_LINK = re.compile(r'<a href="([^"]+)">')


def _note(page: str) -> str | None:
    found = NOTE.findall(page)
    assert len(found) <= 1
    return html.unescape(found[0]) if found else None


def test_over_plain_http_the_page_says_so_and_links_the_https_logon(console):
    note = _note(console.get("/logon?next=/status/").get_data(as_text=True))
    assert note is not None
    assert note.startswith("This page is plain HTTP, so your password would cross the "
                           "network unencrypted: log on over HTTPS at ")
    assert '<a href="https://localhost:8043/logon?next=/status/">' in note


def test_a_refused_logon_over_plain_http_says_it_too(console):
    response = console.logon(password="wrong password")
    assert response.status_code == 200
    assert "https://localhost:8043/logon" in _note(response.get_data(as_text=True))


def test_over_https_the_page_has_no_such_note(console):
    console.base_url = "https://localhost:8043"
    page = console.get("/logon").get_data(as_text=True)
    assert "Log on to Mailmoat" in page
    assert _note(page) is None


def test_while_https_is_off_the_note_says_so_without_a_link(console, app):
    app.extensions["mailmoat"].https_off = True
    note = _note(console.get("/logon").get_data(as_text=True))
    assert note == ("This page is plain HTTP, so your password crosses the network "
                    "unencrypted, and HTTPS is off because the key and certificate in the "
                    "data home's tls/ directory do not load.")


def test_the_link_leads_to_the_logon_page_on_the_running_https_listener(home, clock):
    server = ConsoleServer(home, host="127.0.0.1", http_port=0, https_port=0, clock=clock,
                           app_config={"TESTING": True})
    server.start()
    poller = threading.Thread(target=server.serve_until_stopped, daemon=True)
    poller.start()
    try:
        http_port, https_port = (server.listeners[s].port for s in ("http", "https"))
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/logon", timeout=10) as reply:
            note = _note(reply.read().decode())
        [link] = HTTPS_LINK.findall(note)
        assert link == f"https://127.0.0.1:{https_port}/logon"
        unverified = ssl.create_default_context()   # init's self-signed certificate
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen(link, timeout=10, context=unverified) as reply:
            page = reply.read().decode()
        assert "Log on to Mailmoat" in page and _note(page) is None
    finally:
        server.request_stop()
        poller.join(5)
        server.stop()
