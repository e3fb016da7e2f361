"""Settings that name a domain or an address take internationalised domains (i18n finding 6),
and what is compared with them compares one form (finding 1; shared/idn.py).

Domains and addresses are stored in A-label form: they go into DNS lookups (a route's MX, the
PTR names relay.allowed is matched against), SMTP envelopes and the header fields of mail
Mailmoat writes, all of which take that form. The comparisons still take either form, so a
value stored as typed matches as well. A non-ASCII local part is refused with a rule saying
so, not as "not an address".
"""

from __future__ import annotations

import pytest

from core.delivery.routing import NextHop, route
from core.pipeline.checks.disclaimer import is_local
from core.smtp.policy import check_recipient, is_local_domain, listed_relay_client
from shared import db
from shared.cli import main as cli_main
from shared.home import initialise
from shared.paths import DataHome
from shared.settings import defaults
from shared.settings_addresses import Domain, Email, Hostname, RelayEntry, Sender
from shared.settings_entries import RoutingEntry
from shared.settings_types import RuleError
from tests.support.settings_rules import rule_of, stored

MUNICH = "xn--mnchen-3ya.de"                   # münchen.de
EXAMPLE_CN = "xn--fsqu00a.xn--4rr70v"          # 例子.广告
EAI_RULE = ("addresses with non-ASCII before the @ are not supported here (after the @, an "
            "internationalised domain is)")


# --- the settings of finding 6 take U-labels ---------------------------------------------------

@pytest.mark.parametrize("key, value, expected", [
    ("routing.local", [{"match": "münchen.de"}], [{"match": MUNICH, "port": 25}]),
    ("routing.local", [{"match": "MÜNCHEN.DE", "relay": "mail.münchen.de"}],
     [{"match": MUNICH, "relay": f"mail.{MUNICH}", "port": 25}]),
    ("routing.local", [{"match": "*.例子。广告"}], [{"match": f"*.{EXAMPLE_CN}", "port": 25}]),
    ("routing.local", [{"match": "例子．广告"}], [{"match": EXAMPLE_CN, "port": 25}]),
    ("relay.allowed", ["*.münchen.de"], [f"*.{MUNICH}"]),
    ("relay.allowed", ["mx.MÜNCHEN.de"], [f"mx.{MUNICH}"]),
    ("admin.emails", ["admin@例子.广告"], [f"admin@{EXAMPLE_CN}"]),
    ("admin.emails", ["Admin@MÜNCHEN.DE"], [f"Admin@{MUNICH}"]),
    ("heuristic.forward_to", "spam@münchen.de", f"spam@{MUNICH}"),
    ("subject.forward_to", "pruefer@münchen.de", f"pruefer@{MUNICH}"),
    ("outbreak.emails", ["viren@münchen.de"], [f"viren@{MUNICH}"]),
    ("quarantine.misidentified.admin", "admin@例子。广告", f"admin@{EXAMPLE_CN}"),
    ("smtp.notify_from", "sicherheit@münchen.de", f"sicherheit@{MUNICH}"),
    ("smtp.hostname", "mx.münchen.de", f"mx.{MUNICH}"),
    ("routing.default", {"host": "out.münchen.de"}, {"host": f"out.{MUNICH}", "port": 25}),
    ("ldap.domains", ["münchen.de"], [MUNICH]),
])
def test_a_u_label_domain_is_accepted_and_stored_as_its_a_label(key, value, expected):
    assert stored(key, value) == expected


@pytest.mark.parametrize("key, value", [
    ("routing.local", [{"match": "example.com"}, {"match": "*.Corp.example"}]),
    ("relay.allowed", ["*.example.com", "mx.example.com."]),
    ("admin.emails", ["Admin@Example.com"]),
    ("smtp.notify_from", "Mailmoat"),
])
def test_ascii_values_are_stored_as_before(key, value):
    before = {"routing.local": [{"match": "example.com", "port": 25},
                                {"match": "*.corp.example", "port": 25}],
              "relay.allowed": ["*.example.com", "mx.example.com."]}
    assert stored(key, value) == before.get(key, value)


def test_the_same_route_in_both_forms_is_one_entry_twice():
    assert rule_of("routing.local", [{"match": MUNICH}, {"match": "MÜNCHEN.de"}]) == \
        "routing.local: entry 2 repeats entry 1"


@pytest.mark.parametrize("key, value", [
    ("admin.emails", ["ñandú@local.test"]),
    ("admin.emails", ["用户@例子.广告"]),
    ("heuristic.forward_to", "jörg@münchen.de"),
    ("outbreak.emails", ["müller@example.com"]),
    ("quarantine.misidentified.admin", "ñandú@local.test"),
    ("smtp.notify_from", "prüfung@münchen.de"),
])
def test_a_non_ascii_local_part_is_refused_as_such(key, value):
    """Mail Mailmoat writes to such an address (a notification) names it in its To field,
    which it would write as RFC 2047 encoded-words, which RFC 2047 §5 forbids in an address:
    refused, saying why, rather than called "not an address"."""
    assert rule_of(key, value) == f"{key}: " + ("entry 1: " if isinstance(value, list)
                                                 else "") + EAI_RULE


@pytest.mark.parametrize("kind, value, rule", [
    (Email(), "ñandú", "must be a full email address such as admin@example.com"),
    (Email(), "ñandú@not a domain", "must be a full email address such as admin@example.com"),
    (Email(), "a@münchen..de", "must be a full email address such as admin@example.com"),
    (Sender(), "ñandú@", "must be a full email address such as admin@example.com"),
    (RoutingEntry(), {"match": "münch*.de"},
     "match may have * and ? only in labels written in ASCII (*.münchen.de, not münch*.de)"),
    (RoutingEntry(), {"match": "mün chen.de"},
     "match must be a domain, with * and ? wildcards allowed, or an IP address"),
    (RelayEntry(), "münch*.de", "must be a host name, IP, CIDR, *.domain or 1.2.3.*"),
    (Hostname(), "mx.mün chen.de", "must be a host name or an IP address"),
    (Domain(), "-ü.de", "must be a domain name such as example.com"),
])
def test_what_is_still_refused(kind, value, rule):
    with pytest.raises(RuleError) as info:
        kind.check(value)
    assert info.value.rule == rule


def test_queue_forward_takes_an_address_with_an_idn_domain(tmp_path, capsys):
    home = DataHome(tmp_path)
    initialise(home, "Secret-Test-1")
    assert cli_main(["queue", "forward", "pruefer@münchen.de", "--hold", "--no-wait",
                     "--home", str(tmp_path)]) == 0
    conn = db.connect(home.db)
    try:
        [(kind,)] = conn.execute("SELECT kind FROM commands").fetchall()
    finally:
        conn.close()
    assert kind == "hold.forward"
    assert cli_main(["queue", "forward", "ñandú@local.test", "--hold", "--no-wait",
                     "--home", str(tmp_path)]) == 2
    assert EAI_RULE in capsys.readouterr().err


# --- the comparisons take either form, whichever is stored ------------------------------------

def settings(*matches, **changes):
    values = defaults()
    values["routing.local"] = [{"match": m, "relay": "in.test", "port": 25} for m in matches]
    values["routing.default"] = {"host": "out.test", "port": 25}
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    return values


RECIPIENT_DOMAINS = ["münchen.de", "MÜNCHEN.DE", MUNICH, MUNICH.upper(), "münchen.de.",
                     "münchen。de", "münchen．de", "münchen｡de"]


@pytest.mark.parametrize("match", [MUNICH, "münchen.de", "MÜNCHEN.DE"])
@pytest.mark.parametrize("domain", RECIPIENT_DOMAINS)
def test_a_local_route_matches_the_domain_in_either_form(match, domain):
    s = settings(match)
    assert route(domain, s) == NextHop("relay", "in.test", 25, True, f"routing.local:{match}")
    assert is_local_domain(domain, s)
    assert is_local(f"user@{domain}", s)
    assert check_recipient(f"user@{domain}", "192.0.2.1", None, s) is None


@pytest.mark.parametrize("match", [f"*.{EXAMPLE_CN}", "*.例子.广告", "*.例子。广告"])
def test_a_wildcard_route_matches_subdomains_in_either_form(match):
    s = settings(match)
    for domain in ["mx.例子.广告", f"MX.{EXAMPLE_CN}", "mx.例子。广告"]:
        assert route(domain, s).rule == f"routing.local:{match}"
    assert route("例子.广告", s).rule == "routing.default"


def test_a_local_route_without_relay_names_the_a_label_domain_for_the_mx_lookup():
    values = {"routing.local": [{"match": "münchen.de", "port": 2525}],
              "routing.default": None}
    assert route("MÜNCHEN.DE", values) == NextHop("mx", MUNICH, 2525, True,
                                                  "routing.local:münchen.de")
    # not local, no default route: MX of the A-label form, one hop for both forms
    assert route("straße.de", {"routing.local": [], "routing.default": None}) == \
        route("xn--strae-oqa.de", {"routing.local": [], "routing.default": None})


def test_a_different_domain_is_still_not_local():
    s = settings(MUNICH)
    for domain in ["munchen.de", "muenchen.de", "münchen.de.evil.test"]:
        assert not is_local_domain(domain, s)
        refusal = check_recipient(f"user@{domain}", "192.0.2.1", None, s)
        assert refusal is not None and refusal.rule == "relay.allowed"


@pytest.mark.parametrize("entry", [f"*.{MUNICH}", "*.münchen.de", f"mx.{MUNICH}",
                                   "mx.münchen.de"])
def test_relay_entries_match_the_ptr_name_in_either_form(entry):
    s = defaults() | {"relay.allowed": [entry]}
    assert listed_relay_client("203.0.113.5", f"MX.{MUNICH}.", s)
    assert not listed_relay_client("203.0.113.5", "mx.munchen.de", s)
