"""A certificate pasted on Certificate Management that ends inside a block is refused, in the
words a cut-short cert.pem in tls/ gets (shared.tls.cut_short).

Regression test for review20e R2: the install kept only the complete BEGIN/END blocks of the
paste, so a leaf followed by its intermediate, pasted without the intermediate's END line, was
installed as the leaf alone, without a word; clients that lack the intermediate then fail to
verify. Real certificates (a leaf for tls/key.pem and its intermediate), pasted through the
console's form.
"""

from __future__ import annotations

import datetime as dt

from shared.events import Action
from shared.tls import cut_short
from tests.console.test_certs17_chain import Ca, _install, _leaf, _pem


def _pasted_cut_short(admin, home, text: str) -> str:
    before = home.tls_cert.read_bytes()
    page = _install(admin, text)
    assert "Certificate installed." not in page
    assert home.tls_cert.read_bytes() == before
    assert not admin.events(Action.OBJECT_MODIFIED)
    return page


def test_a_chain_certificate_cut_short_in_a_paste_is_refused(admin, home):
    root = Ca()
    intermediate, key = root.intermediate()
    whole = _pem(_leaf(home, intermediate, key), intermediate)
    pasted = whole[:-120]
    page = _pasted_cut_short(admin, home, pasted)
    said = cut_short(pasted.strip().encode(), "the text pasted")
    assert said.startswith("the text pasted ends inside certificate 2 (of the chain after the "
                           "first), before its -----END CERTIFICATE----- line"), said
    assert said in page


def test_a_leaf_cut_short_in_a_paste_is_refused_in_the_same_words(admin, home):
    root = Ca()
    intermediate, key = root.intermediate()
    pasted = _pem(_leaf(home, intermediate, key))[:400]
    page = _pasted_cut_short(admin, home, pasted)
    assert ("the text pasted ends inside the certificate, before its -----END CERTIFICATE----- "
            "line, as a copy cut short does; copy it again whole, as it was sent") in page


def test_the_whole_chain_still_installs(admin, home):
    root = Ca()
    intermediate, key = root.intermediate(not_after=dt.datetime.now(dt.timezone.utc)
                                          + dt.timedelta(days=90))
    page = _install(admin, _pem(_leaf(home, intermediate, key), intermediate))
    assert "Certificate installed." in page
    assert home.tls_cert.read_text().count("BEGIN CERTIFICATE") == 2


def test_a_chain_certificate_cut_in_the_middle_of_a_paste_is_refused(admin, home):
    # review20f R3: only the last block was looked at, so leaf + cut intermediate + root was
    # read as leaf + root and refused for another reason ("paste them in the CA's order")
    root = Ca()
    intermediate, key = root.intermediate()
    leaf = _pem(_leaf(home, intermediate, key))
    chain = _pem(intermediate)
    pasted = leaf + chain[:chain.rindex("-----END")] + _pem(root.cert)
    page = _pasted_cut_short(admin, home, pasted)
    assert ("the text pasted loses the end of certificate 2 (of the chain after the first), "
            "before its -----END CERTIFICATE----- line") in page
