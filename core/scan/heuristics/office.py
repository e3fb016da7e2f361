"""Office macros (olevba from oletools): auto-exec VBA with shell / download / obfuscation
traits (medium), any VBA or Excel 4 macro (high). Macros in an OOXML document are
repairable (core/scan/repair.py removes the VBA project); in OLE2 documents they are not."""

from __future__ import annotations

import logging

from core.scan.heuristics import Heuristic

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


def check(view, part) -> list[Heuristic]:
    if part.true_type not in ("ole",) and not is_ooxml(part):
        return []
    if part.encrypted or len(part.data) > MAX_OCTETS:
        return []
    from oletools.olevba import VBA_Parser
    name = part.filename or part.location
    try:
        parser = VBA_Parser(name, data=part.data)
    except Exception:
        return []
    try:
        vba = parser.detect_vba_macros()
        try:
            xlm = bool(parser.detect_xlm_macros())
        except Exception:
            xlm = False
        if not vba and not xlm:
            return []
        results = parser.analyze_macros() if vba else []
    except Exception:
        return []
    finally:
        try:
            parser.close()
        except Exception:
            pass
    autoexec = [k for t, k, _d in results if t == "AutoExec"]
    traits = sorted({k for t, k, _d in results if t == "Suspicious"
                     and k.lower() in TRAITS} | {t for t, _k, _d in results
                                                if t in OBFUSCATION_TYPES})
    repairable = bool(vba) and is_ooxml(part)
    kind = "VBA" if vba else "Excel 4 (XLM)"
    if vba and autoexec and traits:
        return [Heuristic("Heuristic.Macro.AutoExecShell", "medium",
                          f"{name!r} has {kind} macros that run automatically "
                          f"({', '.join(autoexec[:3])}) and use {', '.join(traits[:5])}",
                          repairable)]
    return [Heuristic("Heuristic.Macro.Present", "high",
                      f"{name!r} contains {kind} macros"
                      + (f" that run automatically ({', '.join(autoexec[:3])})"
                         if autoexec else ""), repairable)]
