"""Excel 4 (XLM) macros outside BIFF workbooks (content18 B4): the macro sheets of OOXML
(.xlsm/.xltm), XLSB and SYLK (.slk) workbooks are "Heuristic.Macro.Present" at `high`, as
docs/antivirus.md's table says ("any VBA or Excel 4 macro"), and nothing at low / medium
(those that run on open and call EXEC and the like are "Heuristic.Macro.AutoExecShell" at
medium: tests/unit/scan/test_av19_excel4_autoopen.py; the macros here only show an ALERT); a
workbook with macro sheets is never "repaired" by removing its VBA project, which would leave
its Excel 4 macros in (core/scan/repair.py "What is not repaired"). Before, olevba's
detect_xlm_macros (BIFF only) was all there was: each of these passed at `high`."""

from __future__ import annotations

import io
import zipfile

import pytest

from core.pipeline.checks import antivirus
from core.scan.heuristics import detect
from core.scan.repair import NotRepairable, macro_sheets, remove_vba
from tests.support.mail import EICAR
from tests.unit.scan.support import (as_attachment, corpus_or_skip, settings, view_of,
                                     with_vba_project)

EXCEL4 = "office/oletools/excel4-macros"
MACROSHEET_REL = "http://schemas.microsoft.com/office/2006/relationships/xlMacrosheet"
INTL_MACROSHEET_REL = "http://schemas.microsoft.com/office/2006/relationships/xlIntlMacrosheet"
WORKSHEET_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
MACROSHEET_TYPE = "application/vnd.ms-excel.macrosheet+xml"
WORKSHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
MACRO_CELLS = (b'<xm:macrosheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/'
               b'main" xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main">'
               b'<sheetData><row r="1"><c r="A1"><f>ALERT("hello")</f></c></row>'
               b'<row r="2"><c r="A2"><f>HALT()</f></c></row></sheetData></xm:macrosheet>')


def workbook(sheet_part: str | None = "xl/macrosheets/sheet1.xml", *,
             relationship: str | None = MACROSHEET_REL,
             content_type: str | None = MACROSHEET_TYPE,
             extra: dict[str, bytes] | None = None, cells: bytes = MACRO_CELLS,
             names: tuple[str, ...] = ("_xlnm.Auto_Open",)) -> bytes:
    """A minimal macro-enabled workbook whose second sheet, at `sheet_part`, is listed by
    `relationship` (a relationship type, None: not listed), has `content_type` (None: no
    Override) and holds `cells` (a macro sheet's XML), its defined names `names` (each
    pointing at Macro1!$A$1); `sheet_part` None: a plain workbook with one worksheet."""
    overrides = [("xl/workbook.xml", "application/vnd.ms-excel.sheet.macroEnabled.main+xml"),
                 ("xl/worksheets/sheet1.xml", WORKSHEET_TYPE)]
    rels = [("rId1", WORKSHEET_REL, "worksheets/sheet1.xml")]
    sheets = '<sheet name="Sheet1" sheetId="1" r:id="rId1"/>'
    if sheet_part is not None:
        if content_type:
            overrides.append((sheet_part, content_type))
        if relationship:
            rels.append(("rId2", relationship, sheet_part.removeprefix("xl/")))
            sheets += '<sheet name="Macro1" sheetId="2" r:id="rId2"/>'
    types = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
             '.org/package/2006/content-types"><Default Extension="rels" ContentType="application'
             '/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
             'ContentType="application/xml"/>'
             + "".join(f'<Override PartName="/{p}" ContentType="{t}"/>' for p, t in overrides)
             + "</Types>")
    relationships = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas'
                     '.openxmlformats.org/package/2006/relationships">'
                     + "".join(f'<Relationship Id="{i}" Type="{t}" Target="{g}"/>'
                               for i, t, g in rels) + "</Relationships>")
    book = ('<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats'
            '.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/'
            f'officeDocument/2006/relationships"><sheets>{sheets}</sheets><definedNames>'
            + "".join(f'<definedName name="{n}">Macro1!$A$1</definedName>' for n in names)
            + '</definedNames></workbook>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", types)
        z.writestr("_rels/.rels", '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns='
                   '"http://schemas.openxmlformats.org/package/2006/relationships"><Relationship '
                   'Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                   'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        z.writestr("xl/workbook.xml", book)
        z.writestr("xl/_rels/workbook.xml.rels", relationships)
        z.writestr("xl/worksheets/sheet1.xml", b'<worksheet xmlns="http://schemas.openxml'
                   b'formats.org/spreadsheetml/2006/main"><sheetData/></worksheet>')
        if sheet_part is not None:
            z.writestr(sheet_part, cells)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return out.getvalue()


SYLK_MACRO = (b"ID;PWXL;N;E\r\nP;PGeneral\r\nO;L;E;D;V0;K47;G100 0.001\r\n"
              b"NN;NAuto_Open;ER1C1\r\nC;Y1;X1;KFALSE;EALERT(\"hello\")\r\n"
              b"C;Y2;KTRUE;EHALT()\r\nE\r\n")
SYLK_DATA = b"ID;PWXL;N;E\r\nP;PGeneral\r\nC;Y1;X1;K42\r\nC;Y2;X1;K\"total\"\r\nE\r\n"


def _names(raw: bytes, level: str) -> list[str]:
    view = view_of(raw)
    return sorted({h.name for _p, h in detect(view, view.parts, level)})


def _only_at_high(name: str, data: bytes) -> None:
    raw = as_attachment(name, data)
    assert [_names(raw, level) for level in ("off", "low", "medium", "high")] == [
        [], [], [], ["Heuristic.Macro.Present"]], name


@pytest.mark.parametrize("suffix", [".xls", ".xlt", "_excel5_format.xls", ".xlsm", ".xltm",
                                    ".xlsb", ".slk"])
def test_corpus_excel4_workbooks_are_macro_present_at_high_only(suffix):
    path = corpus_or_skip() / EXCEL4 / f"excel4_sample_macro{suffix}"
    if not path.is_file():
        pytest.skip(f"{path} not in the shared corpus")
    _only_at_high(path.name, path.read_bytes())


@pytest.mark.parametrize("package, sheet", [
    (workbook(), "xl/macrosheets/sheet1.xml"),
    # found by what Excel follows, wherever the part lies: the workbook's relationship...
    (workbook("xl/worksheets/sheet2.xml", content_type=None), "xl/worksheets/sheet2.xml"),
    # ... or the part's content type
    (workbook("xl/worksheets/sheet2.xml", relationship=None), "xl/worksheets/sheet2.xml"),
    (workbook("xl/worksheets/intl.xml", relationship=INTL_MACROSHEET_REL,
              content_type="application/vnd.ms-excel.intlmacrosheet+xml"),
     "xl/worksheets/intl.xml"),
    # XLSB: a binary macro sheet
    (workbook("xl/macrosheets/sheet1.bin", content_type="application/vnd.ms-excel.macrosheet"),
     "xl/macrosheets/sheet1.bin"),
], ids=["folder", "relationship", "content-type", "international", "xlsb"])
def test_crafted_macro_sheets_are_found_and_named(package, sheet):
    assert macro_sheets(package) == [sheet]
    _only_at_high("budget.xlsm", package)
    view = view_of(as_attachment("budget.xlsm", package))
    [(_part, hit)] = detect(view, view.parts, "high")
    assert "Excel 4 (XLM)" in hit.reason and sheet in hit.reason and not hit.repairable


def test_workbooks_and_sylk_files_without_macro_sheets_stay_clean():
    plain = workbook(None)
    assert macro_sheets(plain) == []
    assert _names(as_attachment("budget.xlsx", plain), "high") == []
    assert _names(as_attachment("data.slk", SYLK_DATA), "high") == []
    assert macro_sheets(b"PK\x03\x04 not a zip") == [] and macro_sheets(SYLK_MACRO) == []


def test_sylk_macro_sheet_is_macro_present_at_high_only():
    _only_at_high("invoice.slk", SYLK_MACRO)
    # Excel reads a SYLK by its content, whatever the attachment is called
    _only_at_high("invoice.csv", SYLK_MACRO)


def test_excel4_workbook_is_deleted_not_repaired():
    # the table's action for an unrepairable file: av.on_unrepairable (delete by default)
    view = view_of(as_attachment("budget.xlsm", workbook()), av__heuristics="high")
    [finding] = antivirus.check(view, settings(av__heuristics="high"))
    assert (finding.event, finding.rule, finding.action) == (
        "file_deleted", "av.on_unrepairable", "remove_part")
    assert finding.data["virus"] == "Heuristic.Macro.Present"
    assert "xl/macrosheets/sheet1.xml" in finding.reason


def test_removing_vba_does_not_repair_a_workbook_with_macro_sheets():
    # a signature in its vbaProject.bin made the workbook "repaired (macros removed)" with
    # its Excel 4 macro sheet still in it
    package = with_vba_project(workbook(), EICAR)
    with pytest.raises(NotRepairable, match="Excel 4 macro sheets"):
        remove_vba(package)
    view = view_of(as_attachment("budget.xlsm", package))
    findings = antivirus.check(view, settings())
    assert [(f.event, f.rule) for f in findings] == [("file_deleted", "av.on_unrepairable")]
    assert "Excel 4 macro sheets (xl/macrosheets/sheet1.xml)" in findings[0].reason
    # without the macro sheet the same workbook is repaired, as before
    view = view_of(as_attachment("budget.xlsm", with_vba_project(workbook(None), EICAR)))
    assert [f.event for f in antivirus.check(view, settings())] == ["file_repaired"]


def test_vba_and_excel4_workbook_is_judged_on_both_and_not_repairable():
    docm = corpus_or_skip() / "office/oletools/oleform/oleform-PR314.docm"
    vba = zipfile.ZipFile(docm).read("word/vbaProject.bin")
    package = with_vba_project(workbook(), vba)
    view = view_of(as_attachment("budget.xlsm", package))
    [hit] = [h for p, h in detect(view, view.parts, "medium") if p.filename == "budget.xlsm"]
    assert hit.name == "Heuristic.Macro.AutoExecShell" and not hit.repairable
    assert "VBA and Excel 4 (XLM) macros" in hit.reason
    [finding] = antivirus.check(view, settings())
    assert (finding.event, finding.rule) == ("file_deleted", "av.on_unrepairable")
    # the VBA alone is repaired (tests/unit/scan/test_repair.py)
    view = view_of(as_attachment("budget.xlsm", with_vba_project(workbook(None), vba)))
    assert [f.event for f in antivirus.check(view, settings())] == ["file_repaired"]
