"""Office macros (olevba from oletools): auto-exec VBA with shell / download / obfuscation
traits, and Excel 4 macros that run automatically (Auto_Open) with shell / download /
formula-building traits (core/scan/heuristics/excel4.py), at medium; any VBA or Excel 4
macro (high). Macros in an OOXML document are repairable (core/scan/repair.py removes the
VBA project); in OLE2 documents they are not.

Where Excel 4 (XLM) macros are found
    - BIFF workbooks (.xls, .xlt: OLE2): olevba's detect_xlm_macros (its BIFF plugin);
    - OOXML and XLSB workbooks (.xlsm, .xltm, .xlsb): their macro sheets
      (core/scan/repair.py `macro_sheets`), which olevba reads only through
      XLMMacroDeobfuscator, a package not installed here (content18 B4: every one passed
      at `high`);
    - SYLK files (.slk): an attachment that starts with "ID", as Excel and olevba read
      one, holding a macro sheet (olevba's SLK reader).
A workbook with macro sheets is not repairable, whatever VBA it also has: repair removes
the VBA project only (core/scan/repair.py "What is not repaired").
"""

from __future__ import annotations

import logging

from core.scan.heuristics import Heuristic, excel4
from core.scan.repair import macro_sheets

OFFICE_TYPES = {"ole", "zip", "docx", "xlsx", "pptx", "ooxml"}
OOXML_EXTENSIONS = (".docm", ".xlsm", ".pptm", ".dotm", ".xltm", ".potm", ".ppsm", ".xlam",
                    ".docx", ".xlsx", ".pptx")
TRAITS = {                      # olevba "Suspicious" keywords that mean shell/download
    "shell", "wscript.shell", "run", "createobject", "urldownloadtofile", "xmlhttp",
    "microsoft.xmlhttp", "msxml2.xmlhttp", "winhttp.winhttprequest", "adodb.stream",
    "powershell", "cmd.exe", "shellexecute", "exec", "savetofile", "get", "open",
    "call", "createprocess", "environ", "kill", "vba stomping", "chr", "strreverse",
    "callbyname", "executeexcel4macro", "win32_process", "getobject",
}
OBFUSCATION_TYPES = {"Hex String", "Base64 String", "Dridex String", "VBA obfuscated Strings"}
MAX_OCTETS = 32 * 2**20

logging.getLogger("olevba").setLevel(logging.CRITICAL)


def is_ooxml(part) -> bool:
    return part.true_type in ("zip", "ooxml", "docx", "xlsx", "pptx") and (
        b"[Content_Types].xml" in part.data[:65536] or b"[Content_Types].xml" in part.data[-65536:])


def is_sylk(part) -> bool:
    """A file Excel opens as SYLK: it starts with "ID" (olevba's test too)."""
    return part.is_attachment and part.data[:2] == b"ID"


def check(view, part) -> list[Heuristic]:
    ooxml = is_ooxml(part)
    if part.true_type not in ("ole",) and not ooxml and not is_sylk(part):
        return []
    if part.encrypted or len(part.data) > MAX_OCTETS:
        return []
    sheets = macro_sheets(part.data) if ooxml else []
    name = part.filename or part.location
    vba, xlm, xlm_listing, results = _olevba(name, part.data)
    xlm = xlm or bool(sheets)
    if not vba and not xlm:
        return []
    xlm_found = (excel4.from_package(part.data, sheets) if sheets
                 else excel4.from_olevba(xlm_listing) if xlm_listing else None)
    autoexec = [k for t, k, _d in results if t == "AutoExec"]
    traits = sorted({k for t, k, _d in results if t == "Suspicious"
                     and k.lower() in TRAITS} | {t for t, _k, _d in results
                                                if t in OBFUSCATION_TYPES})
    repairable = bool(vba) and ooxml and not sheets
    kind = " and ".join(k for k, has in (("VBA", vba), ("Excel 4 (XLM)", xlm)) if has)
    where = (f" (macro sheet{'s' if len(sheets) > 1 else ''} {', '.join(sheets[:3])}"
             f"{', ...' if len(sheets) > 3 else ''})") if sheets else ""
    if vba and autoexec and traits:
        return [Heuristic("Heuristic.Macro.AutoExecShell", "medium",
                          f"{name!r} has {kind} macros that run automatically "
                          f"({', '.join(autoexec[:3])}) and use {', '.join(traits[:5])}"
                          + where, repairable)]
    if xlm_found and xlm_found.automatic and xlm_found.traits:
        lead = f"{name!r} has {kind} macros" + ("; the Excel 4 ones run" if vba else " that run")
        return [Heuristic("Heuristic.Macro.AutoExecShell", "medium",
                          f"{lead} automatically ({', '.join(xlm_found.automatic[:3])}) and "
                          f"use {', '.join(xlm_found.traits[:5])}" + where, repairable)]
    if xlm_found:
        autoexec += [n for n in xlm_found.automatic if n not in autoexec]
    return [Heuristic("Heuristic.Macro.Present", "high",
                      f"{name!r} contains {kind} macros"
                      + (f" that run automatically ({', '.join(autoexec[:3])})"
                         if autoexec else "") + where, repairable)]


def _olevba(name: str, data: bytes) -> tuple[bool, bool, list[str], list]:
    """(has VBA, has Excel 4 macros as olevba finds them, its listing of them (BIFF, SYLK:
    core/scan/heuristics/excel4.py `from_olevba`), olevba's analysis of the VBA); nothing
    found when olevba cannot read `data`."""
    from oletools.olevba import VBA_Parser
    try:
        parser = VBA_Parser(name, data=data)
    except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
        raise
    except Exception:
        return False, False, [], []
    try:
        vba = bool(parser.detect_vba_macros())
        try:
            xlm = bool(parser.detect_xlm_macros())
            listing = [str(line) for line in parser.xlm_macros or ()] if xlm else []
        except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
            raise
        except Exception:
            xlm, listing = False, []
        return vba, xlm, listing, (parser.analyze_macros() or []) if vba else []
    except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
        raise
    except Exception:
        return False, False, [], []
    finally:
        try:
            parser.close()
        except MemoryError:     # over the message's memory limit (pipeline/run.py rule 5)
            raise
        except Exception:
            pass
