"""Helpers for the pipeline tests: settings snapshots, message builders, corpus access."""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from pathlib import Path

import pytest

from core.pipeline.decompose import decompose_bytes
from core.pipeline.run import run_checks
from core.pipeline.verdict import decide
from shared.settings import defaults

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus"

CONTEXT = {"queue_id": "TESTQUEUEID0", "sender": "sender@outside.test",
           "recipients": ["user@local.test"], "client_ip": "192.0.2.10"}


def settings(**changes) -> dict:
    """The defaults with `changes` (keys with __ for dots), local.test as local routing."""
    values = defaults()
    values["routing.local"] = [{"match": "local.test"}]
    values.update({k.replace("__", "."): v for k, v in changes.items()})
    return values


def message(subject="Hello", body="Plain body text.\n", attachments=(), html=None,
            sender="sender@outside.test", to="user@local.test", headers=None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = "<test@outside.test>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for name, data, *ctype in attachments:
        maintype, subtype = (ctype[0] if ctype else "application/octet-stream").split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes().replace(b"\n", b"\r\n")


def with_attached_message(outer_subject: str, inner: bytes) -> bytes:
    """A multipart/mixed message carrying `inner` as a 7bit message/rfc822 part."""
    b = b"outer-" + outer_subject.encode()
    return (b"From: a@outside.test\r\nTo: user@local.test\r\nSubject: "
            + outer_subject.encode() + b"\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"" + b + b"\"\r\n\r\n"
            b"--" + b + b"\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
            b"--" + b + b"\r\nContent-Type: message/rfc822\r\n\r\n" + inner
            + b"\r\n--" + b + b"--\r\n")


def view_of(raw: bytes, context=None, **changes):
    return decompose_bytes(raw, {**CONTEXT, **(context or {})}, settings(**changes))


def verdict_of(raw: bytes, context=None, **changes):
    values = settings(**changes)
    view = decompose_bytes(raw, {**CONTEXT, **(context or {})}, values)
    findings = run_checks(view, values)
    return view, findings, decide(findings)


def corpus_rows(prefix: str = "", label: str | None = None) -> list[tuple[Path, str]]:
    manifest = CORPUS / "MANIFEST"
    if not manifest.exists():
        pytest.skip(f"shared corpus not found at {CORPUS.resolve()}")
    out = []
    for line in manifest.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        path, _sha, lab = line.split("\t")
        if path.startswith(prefix) and (label is None or lab == label):
            out.append((CORPUS / path, lab))
    return out


def corpus_file(relative: str) -> bytes:
    path = CORPUS / relative
    if not path.exists():
        pytest.skip(f"shared corpus file {relative} not found under {CORPUS.resolve()}")
    return path.read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
