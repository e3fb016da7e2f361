"""shared/settings_doc.py and the committed docs/settings.md it generates."""

from pathlib import Path

from shared.settings import PAGES, SCHEMA
from shared.settings_doc import _RULES_HEADING as RULES_HEADING
from shared.settings_doc import REGENERATE, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def table_rows(text):
    """{key: [type, default, restart, help]} from the rendered tables of the pages (not the
    closing table of the rules that span keys)."""
    found = {}
    for line in text.split(f"\n## {RULES_HEADING}\n")[0].splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            found[cells[0].strip("`")] = cells[1:]
    return found


def test_committed_doc_is_current():
    assert DOC.read_text("utf-8") == render(), (
        f"docs/settings.md is out of date with shared/settings.py; regenerate it with "
        f"`{REGENERATE}` and commit it")


def test_every_key_once_under_its_page():
    text = render()
    rows = table_rows(text)
    assert list(rows) == [key for page in PAGES for key, s in SCHEMA.items() if s.page == page]
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == [title for page, title in PAGES.items()
                        if any(s.page == page for s in SCHEMA.values())] + [RULES_HEADING]


def test_cells():
    rows = table_rows(render())
    assert rows["smtp.port"][:3] == ["integer 1..65535", "`25`", "no"]
    assert rows["smtp.port"][3].startswith("SMTP listening port. Rules: `smtp.port`, "
                                           "`http.port` and `https.port` are all different. "
                                           "This host: when saved, a port is refused")
    assert rows["smtp.listen"][0] == "list of IP address (1..16 entries)"
    assert rows["smtp.tls.inbound"][:2] == ["one of off \\| offer", '`"offer"`']
    assert rows["scan.temp_dir"][2] == "yes"
    assert rows["admin.password"][1] == "(secret)"
    assert rows["ldap.password"][1] == "(secret)"
    assert rows["quarantine.reinsertion_key"][1] == "(generated)"
    assert rows["logging.retention_days"][0] == "integer 7..3650 or 0"
    assert rows["heuristic.x_bulk"][3] == "Add X-Bulk: \\<score\\> to spam."


def test_every_line_is_a_well_formed_table_row():
    pages, rules = render().split(f"\n## {RULES_HEADING}\n")
    for text, cells in ((pages, 5), (rules, 2)):
        for line in text.splitlines():
            if line.startswith("|"):
                unescaped = line.replace("\\|", "")
                assert unescaped.count("|") == cells + 1, line
