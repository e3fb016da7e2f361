"""How long a clamd stream may be is the administrator's clamd's StreamMaxLength, not a
fixed 25 MiB of ours (content18 B6: a 26 MiB attachment was held as "27262976 bytes exceed
the clamd stream limit (26214400)" by a clamd configured for 100M, so with clamd in use every
part between 25 MiB and size.max_mb waited in the hold queue). Every buffer is sent; clamd
says when it is too long, and that reply is the scan_error (core/scan/clamd.py rule 1).
Against a real clamd (tests/support/clamd.py) whose StreamMaxLength is just over 25 MiB."""

from __future__ import annotations

import pytest

from core.pipeline.checks import antivirus
from core.scan.clamd import ClamdEngine, ScanError, take_contact
from tests.support.clamd import STREAM_REFUSAL, clamd_fixture
from tests.support.mail import EICAR
from tests.unit.scan.support import as_attachment, settings, view_of, zip_with_deflate64

STREAM_MAX_MB = 27
clamd = clamd_fixture(stream_max_mb=STREAM_MAX_MB)
OLD_LIMIT_OCTETS = 25 * 2**20


def test_a_part_over_25_mib_within_clamds_limit_is_scanned(clamd):
    data = bytes(OLD_LIMIT_OCTETS + 2**20) + EICAR
    found = ClamdEngine(clamd.address).scan(data)
    assert found is not None and found.name == "Mailmoat.Test.EICAR"
    assert ClamdEngine(clamd.address).scan(bytes(OLD_LIMIT_OCTETS + 2**20)) is None


@pytest.mark.parametrize("octets", [STREAM_MAX_MB * 2**20 + 1, 48 * 2**20],
                         ids=["just-over", "closed-while-sending"])
def test_a_stream_over_clamds_limit_is_clamds_answer(clamd, octets):
    # far over the limit clamd answers and closes while the stream is still being sent
    # (a broken pipe here): its reply is read all the same
    take_contact()
    with pytest.raises(ScanError) as caught:
        ClamdEngine(clamd.address).scan(bytes(octets))
    message = str(caught.value)
    assert STREAM_REFUSAL in message and str(octets) in message and "StreamMaxLength" in message
    contact = take_contact()
    assert contact is not None and contact.answered     # clamd answered: it is not down


def test_the_scan_error_finding_names_clamds_reply(clamd):
    changes = {"av__engine": "clamd", "av__clamd__address": clamd.address}
    raw = as_attachment("backup.bin", bytes(STREAM_MAX_MB * 2**20 + 4096))
    findings = antivirus.check(view_of(raw, **changes), settings(**changes))
    assert [(f.event, f.rule, f.action) for f in findings] == [
        ("scan_error", "av.engine", "hold")]
    assert STREAM_REFUSAL in findings[0].reason and findings[0].data == {"engine": "clamd"}


def test_an_unpacked_item_over_clamds_limit_is_passed_over(clamd):
    # clamd.py rule 5: the follow-up streams of an infected buffer go on past an item
    # clamd refuses as too long, so the infected members after it are reported too
    data = zip_with_deflate64({"a.com": EICAR, "setup.bin": bytes(STREAM_MAX_MB * 2**20 + 1),
                               "b.com": EICAR + b"  "}, {"a.com", "setup.bin", "b.com"})
    found = ClamdEngine(clamd.address).scan_all(data)
    assert [(d.name, d.where) for d in found] == [
        ("Mailmoat.Test.EICAR", "deflate64[0]"), ("Mailmoat.Test.EICAR", "deflate64[2]")]
