"""docs/operations.md says how often the console and each SMTP listener look at tls/, and
names the constant each figure comes from: the figure is that constant's value (review17 C5:
the page said once a second for the console, which polls every 0.5 s)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from console.serve import POLL_SECONDS
from core.smtp.tls import TlsFiles

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


@pytest.mark.parametrize("name, value", [("console.serve.POLL_SECONDS", POLL_SECONDS),
                                         ("core.smtp.tls.TlsFiles.CHECK_SECONDS",
                                          TlsFiles.CHECK_SECONDS)])
def test_the_tls_polling_figures_in_operations_md_are_the_constants(name, value):
    text = " ".join(OPERATIONS.read_text().split())     # a figure may wrap to the next line
    figures = re.findall(r"every ([0-9.]+) s \(`" + re.escape(name) + r"`\)", text)
    assert figures, f"operations.md names no figure for {name}"
    assert [float(figure) for figure in figures] == [value] * len(figures)
