"""`mailmoat run`'s Console line and Certificate lines speak of one load of tls/ (review20b
D1): each loaded the pair itself, so a pair copied into tls/ between the two (as
docs/operations.md describes such copies) gave `Console: … and https://…` above
`Certificate: … Meanwhile HTTPS is off`, the contradiction opsdocs20 C5 was about. The
banner loads the pair once and gives it to both; their words for a pair that does not load
are shared.tls's. Real files in a real tls/, the functions `mailmoat run` prints."""

from __future__ import annotations

import datetime as dt

from core.commands import certificate_lines, console_line
from shared.tls import PAIR_DOES_NOT_LOAD, load_server_pair
from tests.support.core import make_home, stored_settings


def _cut_short(home) -> None:
    """cert.pem as a copy cut short leaves it (its END line lost); no previous pair."""
    home.tls_cert.write_bytes(home.tls_cert.read_bytes()[:400])


def _banner(home, pair) -> tuple[str, list[str]]:
    now = dt.datetime.now(dt.timezone.utc)
    return (console_line(home, stored_settings(home), pair),
            certificate_lines(home, now, pair))


def test_a_pair_broken_after_the_banner_loaded_it_gives_https_and_no_certificate_line(
        tmp_path):
    home = make_home(tmp_path / "home")
    settings = stored_settings(home)
    pair = load_server_pair(home)           # the pair the banner loaded: init's, good
    _cut_short(home)                        # a copy into tls/ meanwhile
    console, certificate = _banner(home, pair)
    assert console.startswith(f"Console: http://localhost:{settings['http.port']}/  and  "
                              f"https://localhost:{settings['https.port']}/"), console
    assert certificate == []


def test_a_pair_repaired_after_the_banner_loaded_it_gives_https_off_in_both(tmp_path):
    home = make_home(tmp_path / "home")
    good = home.tls_cert.read_bytes()
    _cut_short(home)
    pair = load_server_pair(home)           # the pair the banner loaded: none loads
    home.tls_cert.write_bytes(good)         # repaired meanwhile
    console, [certificate] = _banner(home, pair)
    assert "https://" not in console
    assert console.endswith(f"is off: {PAIR_DOES_NOT_LOAD}; see Certificate below)")
    assert certificate.startswith(f"{PAIR_DOES_NOT_LOAD}: cert.pem ")
    assert certificate.endswith("Meanwhile HTTPS is off and SMTP offers no STARTTLS. To fix "
                                "it, install a certificate on the console's Certificate "
                                "Management page (Configuration › Setup) or put a matching "
                                "key.pem and cert.pem in tls/")
