"""Detection quality on the held-out part of the corpus split (core/scan/antispam/training.py:
salt "mailmoat-antispam-split-v1", 30 % test by body hash). The shipped definitions never saw
these messages (tools/train_spam_model.py trains on the other part).

The fast test asserts the engine's own figures, exactly those of the full evaluation run
committed in bench/antispam-eval.json (the docs/antispam.md table); a slow one runs
Debian's SpamAssassin offline with Bayes trained on the same training part, on the same test
messages, in the same run (bench/antispam_eval.py), and compares; another sends the held-out
part through a running core to show that the figures are the gateway's, not only the
evaluation's.
"""

from __future__ import annotations

import json
import smtplib
import socket
import sys
import tempfile
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # bench/ is not installed

from bench.antispam_eval import (engine_table, format_table, main as antispam_eval,  # noqa: E402
                                 run_spamassassin, score_engine, split)
from core.scan.antispam.engine import HeuristicEngine, threshold_for  # noqa: E402
from core.scan.antispam.training import DEFAULT_CORPUS, view_of     # noqa: E402
from tests.support.core import CoreProcess, make_home        # noqa: E402
from tests.support.mail import raw_field, smtp_ready         # noqa: E402
from tests.support.sink import Sink                          # noqa: E402
from tests.support.tools import require_tool                 # noqa: E402

# The full evaluation run's figures (bench/antispam_eval.py with SpamAssassin), which
# docs/antispam.md quotes: a change that moves any of them is run again and committed with them.
COMMITTED = Path(__file__).resolve().parents[2] / "bench" / "antispam-eval.json"


@pytest.fixture(scope="module")
def held_out():
    if not (DEFAULT_CORPUS / "MANIFEST").exists():
        pytest.skip("shared corpus not present")
    train, test = split(DEFAULT_CORPUS)
    return train, test, score_engine(test)


def test_split_is_fixed_and_holds_out_a_few_hundred_messages(held_out):
    train, test, _ = held_out
    counts = {(s.label, s.split) for s in train + test}
    assert len(train) == 2991 and len(test) == 1285
    assert sum(s.label == "ham" for s in test) == 889
    assert sum(s.label == "spam" for s in test) == 396
    assert not {s.path for s in train} & {s.path for s in test}
    assert counts == {("ham", "train"), ("spam", "train"), ("ham", "test"), ("spam", "test")}


def test_engine_figures_on_held_out_mail(held_out):
    _, test, scores = held_out
    committed = json.loads(COMMITTED.read_text())
    assert committed["definitions"] == HeuristicEngine().definitions().label
    assert committed["test_messages"] == "held-out part of the corpus split"
    def figures(rows):
        return [(r["sensitivity"], r["spam_caught"], r["ham_fp"]) for r in rows]
    assert figures(engine_table(test, scores)) == figures(committed["engine"])
    # and docs/antispam.md's table is the file's (review26d T1)
    docs = (COMMITTED.parents[1] / "docs" / "antispam.md").read_text()
    for line in format_table(committed["engine"], committed["spamassassin"]).splitlines():
        assert line in docs, line
    # default sensitivity: not one false positive (issue 7), whatever the file says
    assert engine_table(test, scores)[0]["ham_fp"] == 0


def test_the_evaluation_measures_other_labelled_mail(tmp_path):
    # an administrator's own sorted mail: one message per file, any depth, dot-files ignored
    (tmp_path / "spam" / "2026").mkdir(parents=True)
    (tmp_path / "ham").mkdir()
    (tmp_path / "spam" / "2026" / "1.eml").write_text(
        "From: x@spam.test\nSubject: offer\n\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-"
        "TEST-EMAIL*C.34X\n")
    (tmp_path / "ham" / "1.eml").write_text(
        "From: colleague@example.test\nSubject: minutes\n\nThe minutes of Monday's meeting.\n")
    (tmp_path / "ham" / ".index").write_text("not a message")
    out = tmp_path / "eval.json"
    assert antispam_eval(["--no-spamassassin", "--json", str(out), "--spam",
                          str(tmp_path / "spam"), "--ham", str(tmp_path / "ham")]) == 0
    result = json.loads(out.read_text())
    default = result["engine"][0]
    assert (default["spam"], default["spam_caught"], default["ham"], default["ham_fp"]) == \
        (1, 1, 1, 0)
    assert result["test_messages"]["spam"] == str(tmp_path / "spam")


@pytest.mark.slow
def test_against_spamassassin_with_bayes_same_messages_same_run(held_out):
    for tool in ("spamassassin", "spamd", "spamc", "sa-learn"):
        require_tool(tool, tool if tool in ("spamd", "spamc") else "spamassassin")
    train, test, scores = held_out
    # not tmp_path: pytest makes its parents 0700, and spamd runs as nobody
    with tempfile.TemporaryDirectory(prefix="mailmoat-sa-") as workdir:
        sa = run_spamassassin(train, test, Path(workdir))
    ours = engine_table(test, scores)[0]
    assert ours["ham_fp"] == 0
    assert sa["spam_recall"] > 0.5          # SpamAssassin really ran, with its Bayes
    # Target of issue 7: recall at the default sensitivity at least SpamAssassin's. Not met
    # yet (docs/antispam.md: 93.4 % at score 90 against 94.2 % with 5 false positives; the
    # model reaches 96.0 % without a false positive at score 50, but the score 90 point is
    # calibrated on training-part cross-validation only): an expected failure until a model
    # update reaches it, then a plain pass.
    if ours["spam_recall"] < sa["spam_recall"]:
        pytest.xfail(f"recall {ours['spam_recall']:.1%} < SpamAssassin {sa['spam_recall']:.1%} "
                     f"(SpamAssassin false positives: {sa['ham_fp']})")


def _first_field(message: bytes) -> bytes:
    """The message's first header field (the gateway's Received), with its folded lines."""
    lines = message.split(b"\r\n")
    end = 1
    while lines[end][:1] in (b" ", b"\t"):
        end += 1
    return b"\r\n".join(lines[:end]) + b"\r\n"


@pytest.mark.slow
def test_the_gateway_scores_held_out_mail_as_the_evaluation_does(held_out, tmp_path):
    """Every held-out message through a running core (smtplib, SMTP listeners, worker
    processes, spool, relay to a loopback sink): each one arrives; exactly the messages the
    evaluation scored spam at the default sensitivity are marked — the Subject prefix and an
    X-Bulk — so the published figures are the gateway's. X-Bulk is the engine's score of the
    message as the gateway scanned it: with the gateway's own Received field on top, which
    moves a few scores by a point or so (the number of hops is a structural token) but no
    decision. The recipient tells the messages apart (it is not in any To header)."""
    _, test, scores = held_out
    with Sink() as sink:
        home = make_home(tmp_path, routing__local=[
            {"match": "local.test", "relay": "127.0.0.1", "port": sink.port}],
            heuristic__enabled=True, heuristic__x_bulk=True)
        sent = {}
        for index, sample in enumerate(test):
            data = smtp_ready(sample.path.read_bytes())
            if data is not None:
                sent[f"m{index}@local.test"] = (data, scores[index])
        assert len(sent) >= len(test) - 10          # only a few have over-long lines
        with CoreProcess(home) as core:
            errors = []

            def client(addresses):
                try:
                    with smtplib.SMTP("127.0.0.1", core.smtp_port, timeout=120) as smtp:
                        for address in addresses:
                            smtp.sendmail("eval@source.test", [address], sent[address][0])
                except Exception as exc:            # reported below, in the test's thread
                    errors.append(exc)

            addresses = sorted(sent)
            threads = [threading.Thread(target=client, args=(addresses[i::4],))
                       for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not errors
            received = sink.wait_for(len(sent), timeout=600)
    threshold = threshold_for(1)
    by_recipient = {m.recipients[0]: m for m in received}
    assert sorted(by_recipient) == addresses
    engine = HeuristicEngine()
    marked = 0
    for address, (original, score) in sent.items():
        data = by_recipient[address].data
        x_bulk = raw_field(data, "x-bulk")
        if score >= threshold:
            marked += 1
            scanned = view_of(_first_field(data) + original, envelope={
                "sender": "eval@source.test", "recipients": [address],
                "client_ip": "127.0.0.1", "helo": socket.getfqdn()})
            assert x_bulk == str(engine.score(scanned).score).encode(), address
            # the prefix, then the Subject exactly as received (raw 8-bit included)
            assert raw_field(data, "subject") == b" ".join(
                filter(None, [b"[Spam]", raw_field(original, "subject")])), address
        else:
            assert x_bulk is None, address
            assert raw_field(data, "subject") == raw_field(original, "subject"), address
    assert marked >= 300        # the held-out spam at score 90 (370 of 396 when written)

