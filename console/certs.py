"""Certificate management for the console's HTTPS (and the core's STARTTLS): the data home's tls/.

What it does (guide §3 "Configuring HTTPS options", SPEC §7):
- `create_request`: a new RSA key and a CSR from the guide's fields. The new key waits in
  tls/request-key.pem, so the certificate in use keeps working until the CA's answer comes.
- `install_certificate`: a CA-signed certificate in PEM (header and footer included, chain
  after the leaf allowed) — refused unless it matches the pending request's key or the key
  in use (when key.pem is under a passphrase, that is the reason given: whether it
  matches cannot be known), unless it is valid now (not expired, not valid only from a
  later date), and
  unless the pair loads as the servers load it (shared.tls.pair_problem: OpenSSL refuses a
  SHA-1 or MD5 signature in the chain, which no parse here shows), and unless the chain
  after it is one a client can follow (`_chain_problem`): each certificate valid now and
  the issuer of the one before it, none twice, at most MAX_CHAIN_CERTIFICATES. OpenSSL
  serves any chain, and a client refuses an expired intermediate as it refuses an expired
  leaf (certs17 C1). What is written is the certificates encoded again, not the text
  pasted: OpenSSL reads no PEM with indented lines, which a mail client's quote makes. A
  certificate that does not parse in well-formed PEM is refused as that, in
  shared.tls.unparsed_certificate's words (certs18 2: "does not match the key" was said).
  Then key.pem and cert.pem are replaced atomically; the
  previous pair is kept as *.previous.
  The HTTPS listener notices the new files and reloads (console.serve).
- `install_self_signed`: a new key and a self-signed certificate.
- `certificate_status`: key date, certificate date, validity, subject, issuer, whether
  the pair in tls/ loads at all (an administrator may have copied files there), and whether
  the certificate is out of its dates or expires within shared.tls.EXPIRY_WARNING_DAYS:
  the servers go on offering an expired one, so nothing else would say it (certs17 C3).
  Both look at the chain served after it too, naming a chain certificate that is out of its
  dates or expires first (certs18 1: the warning looked at the leaf only).
  While cert.pem does not load, that is said of cert.pem.previous, which the servers serve
  after a start then (regress17 R2).

Rules: X.509 building with `cryptography`; key/certificate matching with pyOpenSSL, the
only module of the console that imports it. Never write a key anywhere but tls/ (mode 0600).
Only a pair that loads is kept as *.previous: that is what the servers fall back on
(shared.tls.load_server_pair), so a broken pair must never replace it. The installs return
what changed (for the object_modified event); nothing, when the same pair is installed again
and the files in tls/ load (a pair that does not load is written again, though its
fingerprints are the same).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from shared.idn import ascii_domain
from shared.paths import DataHome
from shared.settings_addresses import Hostname
from shared.settings_types import RuleError
from shared.shown_text import quoted
from shared.tls import (FILE_CONTENT_ERRORS, IN_CERT_PEM, PAIR_DOES_NOT_LOAD, PREVIOUS_SUFFIX,
                        chain_after_leaf, cut_short, dates_problem, expires_soon, expiry_warning,
                        is_self_signed,
                        load_server_pair, make_self_signed, out_of_dates, pair_problem,
                        previous_path, public_key_fingerprint, served_certificate,
                        shown_name, unparsed_certificate, write_atomically)

__all__ = ["CertificateError", "RequestFields", "CertificateStatus", "create_request",
           "install_certificate", "install_self_signed", "certificate_status",
           "request_key_path", "request_path", "fingerprint", "KEY_BITS"]

KEY_BITS = 2048
# A server sends its chain in every handshake: a leaf, one or two intermediates and perhaps
# the root is what CAs issue; ten leaves room for cross-signing without 140 KB handshakes.
MAX_CHAIN_CERTIFICATES = 10
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")


class CertificateError(ValueError):
    """The request or certificate cannot be used; the message is for the administrator."""


@dataclass(frozen=True)
class RequestFields:
    common_name: str
    organization: str
    unit: str
    city: str
    state: str
    country: str
    email: str


@dataclass(frozen=True)
class CertificateStatus:
    key_installed_at: float | None
    cert_installed_at: float | None
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    subject: str | None
    issuer: str | None
    self_signed: bool
    fingerprint: str | None
    request_pem: str | None         # the pending CSR, until its certificate is installed
    request_created_at: float | None
    problem: str | None = None
    dates: str | None = None        # expired, not yet valid, or expiring soon: what to do
    dates_mark: str | None = None   # the same in a few words ("expired on 2026-11-28")
    is_expired: bool = False
    problem_mark: str | None = None  # `problem` in a few words, with what is served instead


def request_key_path(home: DataHome) -> Path:
    return home.tls / "request-key.pem"


def request_path(home: DataHome) -> Path:
    return home.tls / "request.csr"


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


COMMON_NAME_MAX = 64  # RFC 5280 ub-common-name


def _host_name(common_name: str) -> tuple[str, x509.GeneralName]:
    """The common name as a certificate carries it — an IP address, or a host name in ASCII
    with A-labels for international names (RFC 5280 §4.2.1.6: dNSName is IA5String;
    RFC 5890), "*." in front allowed for a wildcard request — and its subjectAltName entry.
    Raises CertificateError saying what is wrong."""
    name = common_name.strip()
    try:
        return name, x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    wildcard = "*." if name.startswith("*.") else ""
    ascii_name = ascii_domain(name[len(wildcard):]) or ""  # "": no IDNA form
    try:
        Hostname().check(ascii_name)
    except RuleError:
        raise CertificateError(f"the common name {quoted(name, 100)} is not a host name such as "
                               "mail.example.com or an IP address") from None
    name = wildcard + ascii_name
    if len(name) > COMMON_NAME_MAX:
        raise CertificateError(f"the common name must be at most {COMMON_NAME_MAX} characters"
                               + (f" (as {name})" if name != common_name.strip() else ""))
    return name, x509.DNSName(name)


# --- request ------------------------------------------------------------------------------

def create_request(home: DataHome, fields: RequestFields) -> str:
    """Make a new key and CSR; returns the CSR in PEM. Raises CertificateError."""
    common_name, alt = _host_name(fields.common_name)
    attributes = [(NameOID.COMMON_NAME, common_name),
                  (NameOID.ORGANIZATION_NAME, fields.organization),
                  (NameOID.ORGANIZATIONAL_UNIT_NAME, fields.unit),
                  (NameOID.LOCALITY_NAME, fields.city),
                  (NameOID.STATE_OR_PROVINCE_NAME, fields.state),
                  (NameOID.COUNTRY_NAME, fields.country.upper()),
                  (NameOID.EMAIL_ADDRESS, fields.email)]
    try:
        name = x509.Name([x509.NameAttribute(oid, value.strip())
                          for oid, value in attributes if value and value.strip()])
    except ValueError as exc:
        raise CertificateError(f"the request fields are not valid: {exc}") from None
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(name)
           .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    csr_pem = csr.public_bytes(serialization.Encoding.PEM)
    write_atomically(request_key_path(home), key_pem, 0o600)
    write_atomically(request_path(home), csr_pem, 0o644)
    return csr_pem.decode("ascii")


# --- install ------------------------------------------------------------------------------

def _parse_chain(pem_text: str) -> tuple[list[x509.Certificate], bytes]:
    data = pem_text.replace("\r\n", "\n").strip().encode("ascii", "replace")
    # A paste that ends inside a block is refused in shared.tls's words: keeping only the
    # whole blocks installed a leaf whose chain certificate was cut short without that chain,
    # and said nothing (review20e R2)
    cut = cut_short(data, "the text pasted")
    if cut is not None:
        raise CertificateError(cut)
    blocks = _PEM_CERT.findall(data)
    if not blocks:
        raise CertificateError("paste the whole certificate in PEM format, including the "
                               "-----BEGIN CERTIFICATE----- and -----END CERTIFICATE----- lines")
    try:
        chain = [x509.load_pem_x509_certificate(block) for block in blocks]
    except ValueError:
        raise CertificateError("the text between the BEGIN and END lines is not a valid "
                               "certificate") from None
    # A part cryptography reads only when asked that does not parse is said as such, with
    # its words (shared.tls.unparsed_certificate), not as a key that does not match, which
    # is what matching it said of a subject not valid UTF-8 (certs18 2)
    unparsed = unparsed_certificate(b"\n".join(blocks), "the text pasted")
    if unparsed is not None:
        raise CertificateError(unparsed)
    return chain, b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)


def _matches(key_pem: bytes, cert_pem: bytes) -> bool:
    """pyOpenSSL's own check that the private key belongs to the certificate."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificate(cert_pem)
        context = SSL.Context(SSL.TLS_METHOD)
        try:
            context.use_privatekey(key)
            context.use_certificate(cert)
        except TypeError:  # pyOpenSSL < 24.3 takes only its own objects
            context.use_privatekey(crypto.PKey.from_cryptography_key(key))
            context.use_certificate(crypto.X509.from_cryptography(cert))
        context.check_privatekey()
        return True
    except (SSL.Error, crypto.Error, ValueError, TypeError):
        return False


def _facts(key_pem: bytes | None, cert_pem: bytes | None) -> dict[str, str | None]:
    """What an object_modified event says about a pair: the certificate's fingerprint, the
    chain's after it, the key's (of its public half); None for what is missing or unreadable."""
    try:
        chain = [x509.load_pem_x509_certificate(block) for block in _PEM_CERT.findall(cert_pem)]
    except (TypeError, ValueError):
        chain = []
    try:
        key = public_key_fingerprint(serialization.load_pem_private_key(key_pem, password=None))
    except (TypeError, ValueError, UnsupportedAlgorithm):
        key = None
    return {"tls.certificate": fingerprint(chain[0]) if chain else None,
            "tls.chain": ", ".join(fingerprint(c) for c in chain[1:]) or None,
            "tls.key": key}


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _replace_pair(home: DataHome, key_pem: bytes, cert_pem: bytes) -> dict[str, list]:
    """Write the pair unless it is the one installed; returns what changed ({} for nothing)."""
    old = _facts(_read(home.tls_key), _read(home.tls_cert))
    new = _facts(key_pem, cert_pem)
    changes = {name: [old[name], value] for name, value in new.items() if old[name] != value}
    loads = load_server_pair(home).problem is None
    if not changes and loads:
        return {}
    if not changes:     # the same certificate, in files the servers cannot read: written again
        changes = {"tls.certificate": [old["tls.certificate"], new["tls.certificate"]]}
    if loads:
        # Written anew (a new inode), never copied over in place: a server compares the
        # previous pair's files with what they were when it loaded its own
        # (shared.tls.pair_to_serve), and a copy could leave them looking the same.
        for path in (home.tls_key, home.tls_cert):
            write_atomically(previous_path(path), path.read_bytes(), 0o600)
    if _read(home.tls_key) != key_pem:   # a renewal for the key in use leaves it, and its date
        write_atomically(home.tls_key, key_pem, 0o600)
    write_atomically(home.tls_cert, cert_pem, 0o644)
    return changes


def install_certificate(home: DataHome, pem_text: str,
                        now: dt.datetime | None = None) -> dict[str, list]:
    """Install a CA-signed certificate; returns what changed, {name: [old, new]}, as
    object_modified events list it — empty when this certificate (and chain) is already
    installed with its key, and nothing was written.

    Raises CertificateError when it is not PEM, is not valid now (expired, or valid only
    from a later date), matches neither the pending request's key nor the key in use, or
    does not load as the servers load it (the message says why, in shared.tls's words).
    """
    chain, chain_pem = _parse_chain(pem_text)
    leaf = chain[0]
    now = now or dt.datetime.now(dt.timezone.utc)
    late = out_of_dates(leaf, now)
    if late is not None and late.expired:
        raise CertificateError(f"the certificate expired on {late.date:%Y-%m-%d}")
    if late is not None:
        # Browsers refuse it until then, and with https.logons on nobody could log on.
        raise CertificateError("the certificate is not valid before "
                               f"{late.date:%Y-%m-%d %H:%M} UTC; install it from then on")
    leaf_pem = leaf.public_bytes(serialization.Encoding.PEM)
    for key_path in (request_key_path(home), home.tls_key):
        if key_path.exists() and _matches(key_path.read_bytes(), leaf_pem):
            key_pem = key_path.read_bytes()
            problem = pair_problem(key_pem, chain_pem, home.tls)
            if problem is not None:
                raise CertificateError(f"the servers could not use it: {problem}")
            problem = _chain_problem(chain, now)
            if problem is not None:
                raise CertificateError(problem)
            changes = _replace_pair(home, key_pem, chain_pem)
            if key_path == request_key_path(home):
                request_key_path(home).unlink(missing_ok=True)
                request_path(home).unlink(missing_ok=True)
            return changes
    if _has_passphrase(_read(home.tls_key)):
        # Whether it matches cannot be known; "does not match" would send the administrator
        # to the CA for nothing (certs17 C8).
        raise CertificateError(
            ("the certificate does not match the private key of the last certificate "
             "request, and " if request_key_path(home).exists() else "")
            + "the key in use cannot be read: tls/key.pem is protected by a passphrase, and "
            "Mailmoat needs the key without one (openssl pkey -in key.pem -out plain.pem "
            "asks for it; put plain.pem in its place as key.pem, mode 0600), then install "
            "the certificate again")
    raise CertificateError("the certificate does not match the private key of the last "
                           "certificate request (nor the key in use); install the certificate "
                           "issued for this server's request")


def _has_passphrase(key_pem: bytes | None) -> bool:
    try:
        serialization.load_pem_private_key(key_pem or b"", password=None)
    except TypeError:       # cryptography: "Password was not given but private key is encrypted"
        return True
    except (ValueError, UnsupportedAlgorithm):
        pass
    return False


def _chain_problem(chain: list[x509.Certificate], now: dt.datetime) -> str | None:
    """Why clients could not follow the chain after the leaf (module header), in words
    that say what to paste instead; None when they can."""
    seen: dict[str, int] = {}
    for cert in chain:
        seen[fingerprint(cert)] = seen.get(fingerprint(cert), 0) + 1
    for cert in chain:
        if seen[fingerprint(cert)] > 1:
            return (f"the certificate {shown_name(cert.subject)} is pasted "
                    f"{seen[fingerprint(cert)]} times; paste the server certificate, then "
                    "each certificate of the chain once")
    if len(chain) > MAX_CHAIN_CERTIFICATES:
        return (f"the paste holds {len(chain)} certificates, more than the "
                f"{MAX_CHAIN_CERTIFICATES} a chain needs: every client would be sent them "
                "all in each handshake; paste the server certificate and the chain the CA "
                "gave for it")
    for before, cert in zip(chain, chain[1:]):
        name = shown_name(cert.subject)
        late = out_of_dates(cert, now)
        if late is not None and late.expired:
            return (f"the chain certificate {name} expired on {late.date:%Y-%m-%d}, and "
                    "clients refuse a chain with an expired certificate as they refuse an "
                    "expired server certificate; ask the CA for its current chain")
        if late is not None:
            return (f"the chain certificate {name} is not valid before "
                    f"{late.date:%Y-%m-%d %H:%M} UTC; ask the CA for its current chain")
        try:
            before.verify_directly_issued_by(cert)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            return (f"the chain certificate {name} did not issue the certificate before it "
                    f"({shown_name(before.subject)}); paste the server certificate "
                    "first, then each certificate of the chain after the one it issued, as "
                    "the CA gave them")
    return None


def install_self_signed(home: DataHome, common_name: str) -> dict[str, list]:
    """A new key and a self-signed certificate for `common_name`; returns what changed.
    Raises CertificateError when the name is not a host name or IP address."""
    name, _alt = _host_name(common_name)
    key_pem, cert_pem = make_self_signed(name)
    return _replace_pair(home, key_pem, cert_pem)


# --- status -------------------------------------------------------------------------------

def certificate_status(home: DataHome, now: float | None = None) -> CertificateStatus:
    """What the status part of the page shows at `now` (the console clock's seconds;
    default: the time now); `problem` says when there is nothing to show or when the pair in
    tls/ does not load (and what the servers do about it), `dates` when the certificate is
    out of its dates or soon will be."""
    request_pem = None
    if request_path(home).exists() and request_key_path(home).exists():
        request_pem = request_path(home).read_text("ascii", "replace")
    base = dict(key_installed_at=_mtime(home.tls_key), cert_installed_at=_mtime(home.tls_cert),
                request_pem=request_pem, request_created_at=_mtime(request_path(home)))
    pair = load_server_pair(home)
    problem, problem_mark = _pair_problem(pair), _pair_mark(pair)
    at = dt.datetime.fromtimestamp(now, dt.timezone.utc) if now is not None \
        else dt.datetime.now(dt.timezone.utc)
    dates = _served_dates(home, pair, at)
    try:    # any file can be in tls/: a part that does not parse must not hide the page
        pem = home.tls_cert.read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
        late = out_of_dates(cert, at)
        if pair.problem is None:
            chain = chain_after_leaf(pem)
            dates = dict(dates=_dates_notice(cert, at, IN_CERT_PEM, chain),
                         dates_mark=_dates_mark(cert, at, chain))
        return CertificateStatus(**base, not_before=cert.not_valid_before_utc,
                                 not_after=cert.not_valid_after_utc,
                                 subject=shown_name(cert.subject),
                                 issuer=shown_name(cert.issuer),
                                 self_signed=is_self_signed(cert),
                                 fingerprint=fingerprint(cert), problem=problem,
                                 problem_mark=problem_mark, **dates,
                                 is_expired=late is not None and late.expired)
    except FILE_CONTENT_ERRORS:
        # A file that is no certificate was not installed as one: no date for it either.
        return CertificateStatus(**{**base, "cert_installed_at": None}, not_before=None,
                                 not_after=None, subject=None, issuer=None, self_signed=False,
                                 fingerprint=None, problem=problem,
                                 problem_mark=problem_mark, **dates)


def _served_dates(home: DataHome, pair, now: dt.datetime) -> dict:
    """The dates notice and mark while cert.pem does not load: the previous certificate's,
    which the servers use at a start then (regress17 R2: it was served expired, and the
    pages spoke only of cert.pem's dates)."""
    served = served_certificate(home, pair) if pair.problem is not None else None
    if served is None:
        return {}
    cert, which, chain = served
    mark = _dates_mark(cert, now, chain)
    # beside the pair's mark (`_pair_mark`), which names the previous pair
    if mark is not None:
        mark = ("the previous pair's " + mark.removeprefix("its ") if mark.startswith("its ")
                else f"the previous pair's certificate {mark}")
    return dict(dates=_dates_notice(cert, now, which, chain), dates_mark=mark)


def _dates_mark(cert: x509.Certificate, now: dt.datetime, chain=()) -> str | None:
    for index, each in enumerate([cert, *chain]):
        late = out_of_dates(each, now)
        if late is not None:
            whose = f"its chain certificate {shown_name(each.subject)} " if index else ""
            return (f"{whose}{'expired on' if late.expired else 'not valid before'} "
                    f"{late.date:%Y-%m-%d}")
    first = expires_soon(cert, now, chain)     # the leaf, or a chain certificate (certs18 1)
    if first is not None:
        whose = f"its chain certificate {shown_name(first.subject)} " if first is not cert else ""
        return f"{whose}expires on {first.not_valid_after_utc:%Y-%m-%d}"
    return None


def _dates_notice(cert: x509.Certificate, now: dt.datetime, which: str,
                  chain=()) -> str | None:
    problem = dates_problem(cert, now, which, chain)
    if problem is not None:
        return (f"{problem[0].upper()}{problem[1:]}. Install a valid certificate below: "
                "request one from your CA, or make a self-signed one meanwhile.")
    warning = expiry_warning(cert, now, "the certificate" if which == IN_CERT_PEM else which,
                             chain)
    if warning is None:
        return None
    if expires_soon(cert, now, chain) is cert:
        renewal = ("ask your CA for a renewed one now (a new request below, or the renewal "
                   "your CA offers) and install it here")
    else:   # clients refuse the chain once that one has expired (certs18 1)
        renewal = ("ask your CA for its current chain now and install the certificate again "
                   "here with it (or a renewed certificate with its chain)")
    return f"{warning[0].upper()}{warning[1:]}: {renewal}; the servers use it without a restart."


def _pair_mark(pair) -> str | None:
    """`_pair_problem` in a few words, for the Status page's row (upgrade17 B3: it showed
    the date of a certificate not in use, with no word that it was not)."""
    if pair.problem is None:
        return None
    if pair.context is not None:
        # running servers keep the pair they loaded (shared.tls.pair_to_serve), which may be
        # this one: review17b B2
        return (f"does not load; the servers go on with the last good pair, the previous pair "
                f"(cert.pem{PREVIOUS_SUFFIX}) from their next start")
    return ("does not load, and there is no previous pair: from a start on, HTTPS is off and "
            "SMTP offers no STARTTLS")


def _pair_problem(pair) -> str | None:
    if pair.problem is None:
        return None
    if pair.context is not None:
        after = ("when they start again, they use the previous pair "
                 f"(key.pem{PREVIOUS_SUFFIX} and cert.pem{PREVIOUS_SUFFIX})")
    else:
        after = "when they start again, HTTPS is off and SMTP offers no STARTTLS"
    return (f"{PAIR_DOES_NOT_LOAD.capitalize()}: {pair.problem}. While they run, "
            f"the console's HTTPS and the SMTP STARTTLS serve the last good pair they know "
            f"of (the previous pair, when it was kept after they loaded theirs); "
            f"{after}. Install a certificate below, or put a matching key.pem and cert.pem "
            "in tls/.")
