"""A cert.pem (or key.pem) cut short in a copy, its END line lost, is said to be that, the
same way whether the leaf is alone or has its chain after it (review20b C1: with a chain,
the leaf parsed and the reason given was OpenSSL's `OpenSSL refuses them (BAD_END_LINE)`,
while a leaf alone said `cert.pem holds no certificate in PEM format`). Real files in a
real tls/, loaded as the servers load them (shared.tls.load_server_pair)."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.paths import DataHome
from shared.tls import load_server_pair, make_self_signed
from tests.support.certificates import chain_into_tls

COPY_AGAIN = ", as a copy cut short does; copy it again whole, as it was sent"
CHAIN_CERTIFICATE = "certificate 2 (of the chain after the first)"


def _home(tmp_path) -> DataHome:
    home = DataHome(tmp_path)
    home.tls.mkdir()
    home.tls_key.write_bytes(make_self_signed("mail.cut.test")[0])
    now = dt.datetime.now(dt.timezone.utc)
    chain_into_tls(home, now, now + dt.timedelta(days=400))    # leaf, then intermediate
    return home


def _problem(home) -> str:
    pair = load_server_pair(home)
    assert pair.context is None         # nor a previous pair
    return pair.problem


def _leaf(pem: bytes) -> bytes:
    end = b"-----END CERTIFICATE-----\n"
    return pem[:pem.index(end) + len(end)]


@pytest.mark.parametrize("cut", [
    lambda pem: pem[:len(_leaf(pem)) + 300],    # in the chain certificate's base64
    lambda pem: pem[:-30],                      # its END line half gone
    lambda pem: pem[:pem.rindex(b"-----END")],  # its END line gone
], ids=["in its base64", "END line half gone", "END line gone"])
def test_a_chain_cut_short_says_which_certificate_ends_before_its_end_line(tmp_path, cut):
    home = _home(tmp_path)
    home.tls_cert.write_bytes(cut(home.tls_cert.read_bytes()))
    assert _problem(home) == (f"cert.pem ends inside {CHAIN_CERTIFICATE}, before its "
                              f"-----END CERTIFICATE----- line{COPY_AGAIN}")


def test_a_leaf_alone_cut_short_is_said_in_the_same_words(tmp_path):
    home = _home(tmp_path)
    home.tls_cert.write_bytes(_leaf(home.tls_cert.read_bytes())[:400])
    assert _problem(home) == ("cert.pem ends inside the certificate, before its -----END "
                              f"CERTIFICATE----- line{COPY_AGAIN}")


def test_a_key_cut_short_is_said_so(tmp_path):
    home = _home(tmp_path)
    home.tls_key.write_bytes(home.tls_key.read_bytes()[:300])
    assert _problem(home) == ("key.pem ends inside the key, before its -----END PRIVATE "
                              f"KEY----- line{COPY_AGAIN}")


def test_a_file_with_every_block_closed_is_not_called_cut_short(tmp_path):
    home = _home(tmp_path)
    assert load_server_pair(home).problem is None
    lines = _leaf(home.tls_cert.read_bytes()).splitlines(True)
    home.tls_cert.write_bytes(b"garbage\n")
    assert _problem(home) == "cert.pem holds no certificate in PEM format"
    home.tls_cert.write_bytes(b"".join(lines[:5] + lines[-1:]))     # END line kept
    assert _problem(home).startswith("cert.pem holds well-formed PEM, but the certificate "
                                     "in it does not parse (cryptography: ")
