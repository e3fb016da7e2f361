"""`mailmoat run`'s Console line gives the https:// address only when HTTPS will be served
(opsdocs20 C5: with a cut-short cert.pem and no previous pair it printed `Console:
http://localhost:P/  and  https://localhost:Q/`, and two lines later `Meanwhile HTTPS is off
and SMTP offers no STARTTLS`; the HTTPS port refused connections). A real `mailmoat run` on a
real data home, and the line from the function that writes it for a previous pair."""

from __future__ import annotations

import shutil

from core.commands import console_line
from tests.support.core import make_home, run_banner, stored_settings


def _cut_short(home) -> None:
    """cert.pem as a copy cut short leaves it (its END line lost)."""
    home.tls_cert.write_bytes(home.tls_cert.read_bytes()[:400])


def test_with_https_off_the_console_line_gives_the_http_address_and_says_why(tmp_path):
    home = make_home(tmp_path / "home")
    _cut_short(home)
    settings = stored_settings(home)
    banner = run_banner(home)
    [line] = [line for line in banner.splitlines() if line.startswith("Console:")]
    assert line == (f"Console: http://localhost:{settings['http.port']}/  (HTTPS, port "
                    f"{settings['https.port']}, is off: the key and certificate in tls/ do "
                    "not load; see Certificate below)"), banner
    assert "https://" not in banner
    assert "Meanwhile HTTPS is off and SMTP offers no STARTTLS" in banner
    assert banner.index("Console:") < banner.index("Certificate:")


def test_with_the_previous_pair_served_the_console_line_gives_the_https_address(tmp_path):
    home = make_home(tmp_path / "home")
    for path in (home.tls_key, home.tls_cert):
        shutil.copy2(path, path.with_name(path.name + ".previous"))
    _cut_short(home)
    settings = stored_settings(home)
    assert console_line(home, settings) == (
        f"Console: http://localhost:{settings['http.port']}/  and  "
        f"https://localhost:{settings['https.port']}/")
