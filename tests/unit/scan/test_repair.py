"""OOXML repair (core/scan/repair.py) and the antivirus check's actions: a repaired .docm /
.xlsm is a valid package without vbaProject.bin and without dangling relationships (parsed),
and the message is delivered with it; unrepairable -> delete / log + not-removed; mass
mailers; a virus in the message body drops the message."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest

from core.pipeline.decompose import decompose_bytes
from core.pipeline.rewrite import rewrite
from core.pipeline.run import run_checks
from core.pipeline.verdict import decide
from core.scan.repair import NotRepairable, check_package, remove_vba
from tests.unit.scan.support import (as_attachment, corpus_or_skip, settings, view_of,
                                     with_vba_project)
from tests.support.mail import EICAR


def docm() -> bytes:
    return (corpus_or_skip() / "office/oletools/oleform/oleform-PR314.docm").read_bytes()


def xlsm() -> bytes:
    """An .xlsm made from the corpus' clean .xlsx plus the .docm's VBA project, wired the way
    Excel does it (relationship, content types)."""
    vba = zipfile.ZipFile(io.BytesIO(docm())).read("word/vbaProject.bin")
    return with_vba_project((corpus_or_skip() / "office/oletools/msodde/dde-test.xlsx")
                            .read_bytes(), vba)


def _assert_clean_package(data: bytes):
    assert check_package(data) == []
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = z.namelist()
        assert not [n for n in names if "vbaProject" in n]
        assert "[Content_Types].xml" in names
        assert b"vbaProject" not in z.read("[Content_Types].xml")


@pytest.mark.parametrize("make", [docm, xlsm], ids=["docm", "xlsm"])
def test_remove_vba_leaves_a_valid_package(make):
    original = make()
    assert check_package(original) == [] or "VBA part" in check_package(original)[0]
    repaired = remove_vba(original)
    _assert_clean_package(repaired)
    from oletools.olevba import VBA_Parser
    assert not VBA_Parser("x", data=repaired).detect_vba_macros()


def test_not_repairable_content():
    with pytest.raises(NotRepairable):
        remove_vba(b"MZ not a zip")
    clean = (corpus_or_skip() / "office/oletools/msodde/harmless-clean.docx").read_bytes()
    with pytest.raises(NotRepairable):
        remove_vba(clean)


@pytest.mark.parametrize("make, name", [(docm, "report.docm"), (xlsm, "budget.xlsm")])
def test_macro_document_is_repaired_and_delivered(make, name):
    raw = as_attachment(name, make())
    changes = {"av__heuristics": "high"}
    view = view_of(raw, **changes)
    findings = run_checks(view, settings(**changes))
    verdict = decide(findings)
    assert verdict.disposition == "deliver"
    [edit] = verdict.edits
    assert edit.action == "replace_part" and edit.event == "file_repaired"
    assert edit.data["repaired"] is True and view.parts[edit.part].filename == name
    out = rewrite(raw, view, verdict.edits)
    after = decompose_bytes(out, {}, settings())
    [doc] = [p for p in after.parts if p.filename == name]
    _assert_clean_package(doc.data)
    assert str(edit.data["content"]).startswith("<repaired content")   # not the bytes in events


def test_unrepairable_is_deleted_with_text():
    raw = as_attachment("eicar.com", EICAR)
    view = view_of(raw)
    verdict = decide(run_checks(view, settings()))
    assert verdict.disposition == "deliver"
    [edit] = verdict.edits
    assert edit.event == "file_deleted" and edit.rule == "av.on_unrepairable"
    assert edit.text == settings()["av.deleted_text"]


def test_delete_without_text():
    view = view_of(as_attachment("eicar.com", EICAR))
    verdict = decide(run_checks(view, settings(av__on_virus="delete",
                                               av__deleted_text__enabled=False)))
    [edit] = verdict.edits
    assert edit.rule == "av.on_virus" and edit.text is None


def test_log_then_not_removed_drops_or_logs():
    view = view_of(as_attachment("eicar.com", EICAR))
    findings = run_checks(view, settings(av__on_virus="log"))
    verdict = decide(findings)
    assert verdict.disposition == "drop" and verdict.rule == "av.on_not_removed"
    assert [f.event for f in findings if f.data.get("virus") and f.event] == ["virus_logged"]
    verdict = decide(run_checks(view, settings(av__on_virus="log", av__on_not_removed="log")))
    assert verdict.disposition == "deliver" and not verdict.edits
    verdict = decide(run_checks(view, settings(av__on_unrepairable="log")))
    assert verdict.disposition == "drop" and verdict.rule == "av.on_not_removed"


def test_virus_in_archive_member_removes_the_archive():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", b"hello")
        z.writestr("inner/eicar.com", EICAR)
    view = view_of(as_attachment("files.zip", buf.getvalue()))
    verdict = decide(run_checks(view, settings()))
    [edit] = verdict.edits
    assert view.parts[edit.part].filename == "files.zip"
    assert edit.data["file"] == "inner/eicar.com"


def test_virus_in_the_message_body_drops_it():
    raw = (b"From: a@outside.test\r\nTo: user@local.test\r\nSubject: hi\r\n\r\n"
           + EICAR + b"\r\n")
    verdict = decide(run_checks(view_of(raw), settings()))
    assert verdict.disposition == "drop" and verdict.rule == "av.outer_message"


def test_mass_mailer_is_dropped_by_name(tmp_path):
    (tmp_path / "mm.ndb").write_text(
        "W32.Test.Mailer@mm:0:*:" + b"MASS-MAILER-TEST-PAYLOAD-123".hex() + "\n")
    raw = as_attachment("doc.scr", b"xx MASS-MAILER-TEST-PAYLOAD-123 xx")
    changes = {"runtime.av.definitions": str(tmp_path)}
    findings = run_checks(view_of(raw), {**settings(), **changes})
    verdict = decide(findings)
    assert verdict.disposition == "drop" and verdict.rule == "av.mass_mailer_cleanup"
    assert [f.event for f in findings if f.data.get("virus")] == ["mass_mailer_cleanup"]
    findings = run_checks(view_of(raw), {**settings(av__mass_mailer_cleanup=False), **changes})
    assert decide(findings).edits[0].event == "file_deleted"


def test_av_disabled_finds_nothing():
    view = view_of(as_attachment("eicar.com", EICAR))
    assert not [f for f in run_checks(view, settings(av__enabled=False)) if f.data.get("virus")]


def test_clamd_down_is_a_scan_error_with_unprocessable_action():
    view = view_of(as_attachment("eicar.com", EICAR))
    findings = run_checks(view, settings(av__engine="both", av__clamd__address="127.0.0.1:9"))
    [error] = [f for f in findings if f.event == "scan_error"]
    assert error.action == "hold" and "clamd" in error.reason and error.rule == "av.engine"
    assert [f.event for f in findings if f.data.get("virus")] == ["file_deleted"]  # builtin
    verdict = decide(findings)
    assert verdict.disposition == "hold"
    findings = run_checks(view, settings(av__engine="clamd", av__clamd__address="127.0.0.1:9",
                                         scan__unprocessable="drop"))
    assert decide(findings).disposition == "drop"


def test_base64_attachment_payload_really_decoded():
    body = base64.b64encode(EICAR)
    assert EICAR not in body
    view = view_of(as_attachment("e.com", EICAR))
    assert any(EICAR == p.data for p in view.parts)
