"""Deletes that acted at once now ask first (accessibility finding C7, WCAG 3.3.4): Virus
Quarantine "Delete Selected Messages", a local routing entry's "Delete" and a spam rule's
"Delete" show a confirmation page naming what goes, delete nothing until Yes, and then
delete exactly what it named, or nothing when that changed meanwhile. Also the Virus
Quarantine's rows name their controls by what they show (C8), and an empty hold queue has
nothing to drop (not "Drop all 0 message(s)?")."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

from shared.spool import SUBJECT_META, Envelope, Spool

QUARANTINE = "/antivirus/quarantine"
DELETE = "/antivirus/quarantine/delete"
EICAR_MAIL = (b"From: a@outside.test\r\nTo: user@local.test\r\nSubject: infected\r\n\r\n"
              b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*\r\n")


class _Forms(HTMLParser):
    """The page's forms: (action, [(name, value)] of hidden inputs and submit buttons)."""

    def __init__(self, page: str):
        super().__init__()
        self.forms: list[tuple[str, list[tuple[str, str]]]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append((attributes.get("action") or "", []))
        elif tag == "input" and self.forms and attributes.get("name") and \
                attributes.get("type") in ("hidden", "submit"):
            self.forms[-1][1].append((attributes["name"], attributes.get("value") or ""))


def _confirmation(page: str) -> tuple[str, dict]:
    """The one form with a Yes (a submit named …confirm): where it posts and what, as the
    browser posts it when Yes is pressed."""
    [(action, fields)] = [(a, f) for a, f in _Forms(page).forms
                          if any(n.endswith("confirm") for n, _v in f)]
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    return action, data


def _flashes(admin, url: str) -> str:
    page = admin.get(url).get_data(as_text=True)
    return html.unescape(" ".join(re.findall(r'<p class="flash [a-z]+" role="[a-z]+">([^<]*)</p>',
                                             page)))


def _said(page: str) -> str:
    [what] = re.findall(r'<p id="confirm-what">(.*?)</p>', page, re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", what)).split())


# --- Virus Quarantine: Delete Selected Messages --------------------------------------------

def _quarantine(home, queue_id: str, subject: str, sender: str) -> str:
    """A copy as the core keeps one (core/scan/service.py), through the spool's own code."""
    spool = Spool(home.spool)
    incoming = spool.open_incoming(queue_id)
    incoming.write(EICAR_MAIL)
    envelope = Envelope.new(queue_id, sender, ["user@local.test"],
                            meta={SUBJECT_META: subject, "kind": "virus_quarantine",
                                  "virus": ["Mailmoat.Test.EICAR"], "files": ["eicar.com"],
                                  "actions": ["file_deleted"], "quarantined_at": 1_800_000_000})
    spool.commit([incoming.prepare(envelope)], "quarantine/virus")
    return queue_id


def _copies(home) -> list[str]:
    return [_quarantine(home, "0AAAAAAAAAAA", "Invoice March", "alice@sender.test"),
            _quarantine(home, "0BBBBBBBBBBB", "Your parcel", "bob@sender.test"),
            _quarantine(home, "0CCCCCCCCCCC", "Meeting notes", "carol@sender.test")]


def _in_spool(home) -> list[str]:
    return sorted(p.name for p in home.queue("quarantine/virus").iterdir())


def test_delete_selected_asks_first_then_deletes_exactly_the_copies_it_listed(admin, home):
    copies = _copies(home)
    response = admin.post(DELETE + "?page=1", {"ids": copies[:2], "delete": "1"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert admin.commands() == []                           # nothing asked before Yes
    assert _said(page).startswith("Delete these 2 messages from the virus quarantine?")
    assert "<title>Deleting Selected Messages · Virus Quarantine · " in page
    assert "Invoice March" in page and "Your parcel" in page and "Meeting notes" not in page
    action, data = _confirmation(page)
    assert data["ids"] == copies[:2]
    response = admin.post(html.unescape(action), data)
    assert response.status_code == 302
    [command] = admin.commands()
    assert (command["kind"], command["args"]) == ("virus_quarantine.delete",
                                                  {"ids": copies[:2]})
    assert _in_spool(home) == copies                       # the core deletes, not the console


def test_a_stale_delete_confirmation_names_no_copy_it_did_not_list(admin, home):
    copies = _copies(home)
    page = admin.post(DELETE, {"ids": [copies[1]], "delete": "1"}).get_data(as_text=True)
    action, data = _confirmation(page)
    # meanwhile, in another tab, the listed copy is deleted
    admin.post(DELETE, {"ids": [copies[1]], "confirm": "1"})
    asked = len(admin.commands())
    admin.post(html.unescape(action), data)
    named = [i for c in admin.commands()[asked:] for i in c["args"]["ids"]]
    assert set(named) <= {copies[1]}
    # a selection gone before its confirmation is shown: said, and nothing asked
    asked = len(admin.commands())
    response = admin.post(DELETE, {"ids": [copies[1]], "delete": "1"})
    assert response.status_code == 302
    assert "the selected messages are no longer in the virus quarantine" in \
        _flashes(admin, QUARANTINE)
    assert len(admin.commands()) == asked


def test_a_delete_selected_of_nothing_asks_nothing(admin, home):
    _copies(home)
    response = admin.post(DELETE, {"delete": "1"}, follow_redirects=True)
    assert "select the messages to delete" in response.get_data(as_text=True)
    assert admin.commands() == []


def test_each_quarantine_row_names_its_controls_by_what_it_shows(admin, home):
    copies = _copies(home)
    page = admin.get(QUARANTINE).get_data(as_text=True)
    [table] = re.findall(r'<table id="virus-quarantine">.*?</table>', page, re.S)
    assert "<th></th>" not in table and not re.search(r"<th[^>]*>\s*</th>", table)
    for queue_id, subject, sender in ((copies[0], "Invoice March", "alice@sender.test"),
                                      (copies[2], "Meeting notes", "carol@sender.test")):
        [label] = re.findall(rf'name="ids" value="{queue_id}" aria-label="([^"]+)"', table)
        [download] = re.findall(rf'href="/antivirus/quarantine/{queue_id}/download" '
                                r'aria-label="([^"]+)"', table)
        for name in (label, download):
            assert subject in name and sender in name and queue_id not in name
        assert download.startswith("Download")     # the visible text is part of the name


# --- Configuration › Routing: Delete ----------------------------------------------------------

def _add_route(admin, match, relay="", port="25"):
    assert admin.post("/configuration/routing/local", {
        "add-match": match, "add-relay": relay, "add-port": port}).status_code == 302


def test_routing_delete_asks_first_then_deletes_that_entry(admin):
    _add_route(admin, "corp.test", "relay.corp.test", "2525")
    _add_route(admin, "other.test")
    response = admin.post("/configuration/routing/local/0/delete", {"original": "corp.test"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<title>Deleting Local Routing Entry corp.test · Routing · " in page
    assert _said(page).startswith("Delete the local routing entry corp.test (destination "
                                  "relay relay.corp.test, port 2525)?")
    assert len(admin.settings()["routing.local"]) == 2     # nothing deleted before Yes
    action, data = _confirmation(page)
    assert admin.post(action, data).status_code == 302
    assert admin.settings()["routing.local"] == [{"match": "other.test", "port": 25}]
    assert "corp.test was removed" in _flashes(admin, "/configuration/routing")


def test_a_routing_confirmation_of_an_entry_changed_or_moved_meanwhile_deletes_nothing(admin):
    _add_route(admin, "corp.test", "relay.corp.test")
    _add_route(admin, "other.test")
    page = admin.post("/configuration/routing/local/1/delete",
                      {"original": "other.test"}).get_data(as_text=True)
    action, data = _confirmation(page)
    # another administrator changes the entry's relay: the confirmation named the old one
    assert admin.post("/configuration/routing/local/1", {
        "match": "other.test", "relay": "new-relay.test", "port": "25",
        "original": "other.test"}).status_code == 302
    before = admin.settings()["routing.local"]
    admin.post(action, data)
    assert admin.settings()["routing.local"] == before
    assert "changed meanwhile" in _flashes(admin, "/configuration/routing")
    # ... or deletes the entry before it: index 1 is now past the end, nothing else goes
    page = admin.post("/configuration/routing/local/1/delete",
                      {"original": "other.test"}).get_data(as_text=True)
    action, data = _confirmation(page)
    first = admin.post("/configuration/routing/local/0/delete", {"original": "corp.test"})
    admin.post(*_confirmation(first.get_data(as_text=True)))
    assert [e["match"] for e in admin.settings()["routing.local"]] == ["other.test"]
    admin.post(action, data)
    assert [e["match"] for e in admin.settings()["routing.local"]] == ["other.test"]


# --- Anti-spam › Spam Rules: Delete -----------------------------------------------------------

def _rule(name: str, *terms: str) -> dict:
    return {"enabled": True, "match": "any", "terms": list(terms), "none_of": [], "name": name}


def _delete_fields(admin, prefix: str) -> dict:
    page = admin.get("/antispam/spam-rules").get_data(as_text=True)
    [(action, fields)] = [(a, f) for a, f in _Forms(page).forms
                          if ("prefix", prefix) in f]
    return dict(fields)


def test_spam_rule_delete_asks_first_then_deletes_that_rule(admin):
    admin.set(rules__spam=[_rule("Pharma", "pills"), _rule("Lottery", "lotto", "jackpot")])
    response = admin.post("/antispam/spam-rules/delete", _delete_fields(admin, "d1"))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert _said(page).startswith("Delete spam rule 2 “Lottery” (enabled)? It matches any of "
                                  "these terms lotto, jackpot")
    assert len(admin.settings()["rules.spam"]) == 2
    action, data = _confirmation(page)
    assert admin.post(action, data).status_code == 302
    assert [r["name"] for r in admin.settings()["rules.spam"]] == ["Pharma"]


def test_a_spam_rule_confirmation_after_the_list_changed_deletes_nothing(admin):
    admin.set(rules__spam=[_rule("Pharma", "pills"), _rule("Lottery", "lotto"),
                           _rule("fifty", "50%")])
    page = admin.post("/antispam/spam-rules/delete",
                      _delete_fields(admin, "d1")).get_data(as_text=True)
    action, data = _confirmation(page)
    admin.set(rules__spam=admin.settings()["rules.spam"][1:])  # another session deletes Rule 1
    before = admin.settings()["rules.spam"]
    admin.post(action, data)                                  # rule 2 is now "fifty"
    assert admin.settings()["rules.spam"] == before
    assert "the rule list changed meanwhile" in _flashes(admin, "/antispam/spam-rules")


def test_spam_rule_delete_buttons_name_their_rule(admin):
    admin.set(rules__spam=[_rule("Pharma", "pills"), _rule("", "lotto")])
    page = admin.get("/antispam/spam-rules").get_data(as_text=True)
    assert re.search(r'aria-label="Delete rule 1 — Pharma" id="delete-0"', page)
    assert re.search(r'aria-label="Delete rule 2" id="delete-1"', page)


# --- Hold Queue: nothing to drop ---------------------------------------------------------------

def test_an_empty_hold_queue_has_nothing_to_drop(admin):
    page = admin.get("/configuration/hold").get_data(as_text=True)
    assert "there is nothing to reprocess, drop or forward" in page
    assert 'value="Drop Messages"' not in page
    response = admin.post("/configuration/hold/confirm", {"drop": "Drop Messages"})
    assert response.status_code == 302                     # a page loaded before it emptied
    assert "The hold queue is empty: there is nothing to drop." in \
        _flashes(admin, "/configuration/hold")
    assert admin.commands() == []
