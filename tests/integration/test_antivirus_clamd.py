"""A real clamd started by the test (tests/support/clamd.py) with the same signature set the
builtin engine ships: every EICAR variant and ClamAV test file of the corpus detected, over
TCP and over the unix socket; the antivirus check with av.engine clamd and both; every
infected member of an archive reported, though clamd names one match per stream. The streams
that follow an infected one (core/scan/clamd.py rule 5) also against a scripted clamd on
loopback, which counts them and can leave them unanswered."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zipfile

import pytest

from core.pipeline.checks import antivirus
from core.scan.clamd import ClamdEngine, ScanError
from tests.support.clamd import Clamd
from tests.unit.scan.support import (CLAMD_ONLY, SHIPPED, as_attachment, corpus_or_skip,
                                     manifest, message_for, settings, stored_arj, view_of,
                                     zip_with_deflate64)
from tests.support.mail import EICAR


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    corpus_or_skip()
    with Clamd(tmp_path_factory.mktemp("clamd"), SHIPPED.glob("*.ndb")) as server:
        yield server


def _corpus():
    if not corpus_or_skip():
        return []
    return manifest("eicar", "clamav-test")


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_clamd_detects_corpus_file_with_the_shipped_set(clamd, path):
    found = ClamdEngine(clamd.address).scan(path.read_bytes())
    assert found is not None and found.name.startswith("Mailmoat.Test."), path.name
    assert found.engine == "clamd"


def test_clamd_only_files_are_found_by_clamd_through_the_check(clamd):
    for path in manifest("clamav-test"):
        if path.name not in CLAMD_ONLY:
            continue
        changes = {"av__engine": "clamd", "av__clamd__address": clamd.address}
        findings = antivirus.check(view_of(message_for(path), **changes), settings(**changes))
        names = [f.data["virus"] for f in findings if f.data.get("virus") and f.event]
        assert names and names[0].startswith("Mailmoat.Test."), path.name


def test_unix_socket_and_encrypted_zip(clamd):
    engine = ClamdEngine(str(clamd.socket_path))
    eicar = (corpus_or_skip() / "eicar" / "eicar.com").read_bytes()
    assert engine.scan(eicar).name == "Mailmoat.Test.EICAR"
    assert engine.scan(b"clean content") is None
    # the password-protected zip is not readable to clamd either: the encrypted-container
    # policy handles it (tests/unit/scan/test_corpus_detection.py)
    assert engine.scan((corpus_or_skip() / "eicar" / "eicar_pw_infected.zip").read_bytes()) is None


def test_both_engines_agree_on_every_detected_message(clamd):
    for path in manifest("eicar"):
        changes = {"av__engine": "both", "av__clamd__address": clamd.address}
        findings = antivirus.check(view_of(message_for(path), **changes), settings(**changes))
        assert not [f for f in findings if f.event == "scan_error"]


def test_size_limit_and_stopped_clamd_raise_scan_error(clamd, tmp_path):
    with pytest.raises(ScanError, match="limit"):
        ClamdEngine(clamd.address, max_stream_octets=10).scan(b"x" * 11)
    with pytest.raises(ScanError, match="unreachable"):
        ClamdEngine("127.0.0.1:9").scan(b"x")


def _guide_zip() -> bytes:
    """guide §3's test.zip, test.exe and test.doc both infected."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("test.exe", EICAR)
        archive.writestr("test.doc", EICAR + b"  ")
    return out.getvalue()


@pytest.mark.parametrize("engine", ["clamd", "both"])
def test_every_infected_member_of_an_archive_is_a_finding(clamd, engine):
    # guide36 finding 5: with .zip excluded (guide §3's example) only test.exe was reported
    changes = {"av__engine": engine, "av__clamd__address": clamd.address,
               "scan__mode": "exclude", "scan__exclude": [".zip"], "av__on_virus": "log",
               "av__on_not_removed": "log"}
    findings = antivirus.check(view_of(as_attachment("test.zip", _guide_zip()), **changes),
                               settings(**changes))
    assert sorted((f.event, f.data["file"]) for f in findings) == [
        ("virus_logged", "test.doc"), ("virus_logged", "test.exe")]


def test_clamd_reports_each_infected_member_of_an_archive_it_opens_itself(clamd):
    # INSTREAM stops at the first match: each member the unpackers take out of an infected
    # stream goes as a stream of its own (clamd.py rule 4)
    engine = ClamdEngine(clamd.address)
    data = stored_arj({"a.exe": EICAR, "notes.txt": b"clean", "b.doc": EICAR + b"  "})
    assert [(d.name, d.where) for d in engine.scan_all(data)] == [
        ("Mailmoat.Test.EICAR", "arj[0]"), ("Mailmoat.Test.EICAR", "arj[2]")]
    assert engine.scan_all(stored_arj({"notes.txt": b"clean"})) == []
    changes = {"av__engine": "clamd", "av__clamd__address": clamd.address,
               "av__on_virus": "log", "av__on_not_removed": "log"}
    # a self-extracting ARJ: the decomposer opens a plain .arj itself now (its members are
    # parts: content18 B3), an executable it leaves to the engines
    sfx = b"MZ" + bytes(126) + data
    findings = antivirus.check(view_of(as_attachment("bundle.exe", sfx), **changes),
                               settings(**changes))
    assert [(f.data["file"], f.reason.split("Found: ")[1].split("\n")[0]) for f in findings] == [
        ("bundle.exe", "signature Mailmoat.Test.EICAR (in arj[0])"),
        ("bundle.exe", "signature Mailmoat.Test.EICAR (in arj[2])")]


def test_a_member_over_the_stream_limit_leaves_the_virus_found(clamd):
    # review13 B2: clamd found EICAR in the zip scanned whole (setup.bin unreadable to the
    # decomposer), then the follow-up stream of setup.bin, over the 25 MiB stream limit,
    # raised ScanError: the virus was lost, the message a scan_error for scan.unprocessable
    # (deliver here), and clamd was not asked about eicar.com
    changes = {"av__engine": "clamd", "av__clamd__address": clamd.address,
               "av__on_virus": "log", "av__on_not_removed": "log",
               "scan__unprocessable": "deliver", "container__max_ratio": 100_000}
    data = zip_with_deflate64({"setup.bin": bytes(26 * 2**20), "eicar.com": EICAR},
                              {"setup.bin"}, bad_crc={"setup.bin"})   # unreadable (content18 B2)
    findings = antivirus.check(view_of(as_attachment("bundle.zip", data), **changes),
                               settings(**changes))
    assert [(f.event, f.data.get("file")) for f in findings] == [("virus_logged", "eicar.com")]


class _ScriptedClamd:
    """clamd's INSTREAM on 127.0.0.1 (the exchange of core/scan/clamd.py's header), served
    one connection at a time in a thread: it reads each stream whole, counts it, and answers
    `stream: Mailmoat.Test.EICAR FOUND` to the first `answered` (None: to every one); a
    stream past those is left unanswered, as a clamd that stalls leaves it."""

    def __init__(self, answered: int | None = None):
        self.answered = answered
        self.streams = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)              # so that the thread sees `_stop`
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._unanswered: list[socket.socket] = []

    @property
    def address(self) -> str:
        return "127.0.0.1:%d" % self._listener.getsockname()[1]

    def __enter__(self) -> "_ScriptedClamd":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        self._listener.close()
        for conn in self._unanswered:
            conn.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            try:
                assert _exactly(conn, 10) == b"zINSTREAM\0"
                while size := struct.unpack(">I", _exactly(conn, 4))[0]:
                    _exactly(conn, size)
            except OSError:
                conn.close()
                continue
            self.streams += 1
            if self.answered is not None and self.streams > self.answered:
                self._unanswered.append(conn)
                continue
            with conn:
                conn.sendall(b"stream: Mailmoat.Test.EICAR FOUND\0")


def _exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = conn.recv(n - len(data))
        if not more:
            raise ConnectionResetError("client closed")
        data += more
    return data


def test_a_follow_up_stream_out_of_time_leaves_the_virus_found():
    # review13 B2: the message's scanning time ran out in a follow-up stream, and its
    # ScanError lost what the first stream had found
    data = stored_arj({"a.exe": EICAR, "b.doc": EICAR + b"  "})
    with _ScriptedClamd(answered=1) as fake:
        engine = ClamdEngine(fake.address, deadline=time.monotonic() + 2.0)
        assert [(d.name, d.where) for d in engine.scan_all(data)] == [
            ("Mailmoat.Test.EICAR", "")]
    assert fake.streams == 2                # the failed follow-up ended them


def test_follow_up_streams_do_not_grow_with_the_members_of_an_infected_archive():
    # review13 B7: each member an unpacker took out of an infected stream was a connection
    # of its own, 200 of them for a cabinet of thousands
    streams = []
    for members in (60, 300):
        data = stored_arj({f"m{i}.exe": EICAR for i in range(members)})
        with _ScriptedClamd() as fake:
            found = ClamdEngine(fake.address).scan_all(data)
        assert len(found) == fake.streams - 1   # every follow-up found what it was sent
        streams.append(fake.streams)
    assert streams[0] == streams[1] < 60
