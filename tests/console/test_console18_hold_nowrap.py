"""The hold-queue table keeps each queue id and size on one line (console18 C5: at 1300 px
the Size column read "43 / 66" and the queue id "D257SN / W6GP9N", each on two lines)."""

from __future__ import annotations

from tests.console.test_configuration import _hold


def test_queue_ids_and_sizes_of_the_hold_table_do_not_wrap(admin, home):
    _hold(home, "D257SNW6GP9N")
    page = admin.get("/configuration/hold").get_data(as_text=True)
    assert '<td><code>D257SNW6GP9N</code></td>' in page and '<td class="num">1234</td>' in page
    css = admin.get("/static/console.css").get_data(as_text=True)
    assert "#hold-list td.num, #hold-list td code { white-space: nowrap; }" in css
