"""smtp.max_incoming shared out between listener processes (core/smtp/listeners.py): the
processes' parts add up to the setting — 15 over 2 was 7 + 7, one slot lost."""

from __future__ import annotations

import pytest

from core.smtp.server import SmtpServer
from core.status import Counters
from shared.clock import SYSTEM_CLOCK
from shared.settings import defaults
from shared.spool import Spool


def _allowed(tmp_path, max_incoming: int, share: int, index: int) -> int:
    settings = {**defaults(), "smtp.max_incoming": max_incoming}
    server = SmtpServer(settings=lambda: settings, spool=Spool(tmp_path / "spool"),
                        committer=None, events=None, counters=Counters(), clock=SYSTEM_CLOCK,
                        on_accepted=lambda *a: None, ssl_context=lambda: None,
                        diagnostics_dir=tmp_path, hostname=lambda: "gw.test",
                        share=share, share_index=index)
    return int(server.limiter.total_tokens)


@pytest.mark.parametrize("max_incoming, share, parts", [
    (15, 2, [8, 7]), (15, 1, [15]), (16, 4, [4, 4, 4, 4]), (10, 3, [4, 3, 3]), (1, 2, [1, 1]),
])
def test_the_parts_add_up_to_the_setting(tmp_path, max_incoming, share, parts):
    assert [_allowed(tmp_path, max_incoming, share, i) for i in range(share)] == parts
