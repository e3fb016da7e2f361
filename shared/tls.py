"""The data home's TLS key and certificate, shared by SMTP STARTTLS and the console's HTTPS.

`init` makes a self-signed certificate here when there is neither file, so both processes
offer TLS from the first start (never over a file that is there: a private key cannot be made
again); the console's certificate management replaces the files atomically (write temp,
rename) and keeps the pair it replaced as key.pem.previous and cert.pem.previous.

Rules:
- `load_server_pair` is the one way a server loads the pair: key.pem + cert.pem, else the
  previous pair, else nothing. An administrator can copy any files into tls/ (a corporate
  certificate, say), so a pair that does not load is an expected state, never a crash: the
  caller keeps serving what it can and reports `unusable_message` once (an event).
- What a running server serves while the pair does not load is decided here, by
  `pair_to_serve`, for all of them: the last good pair. That is the previous pair when the
  console kept one after the server loaded its own (the console keeps only a pair that
  loads, and it replaced a newer one than the server has), else the one the server has.
  A server that loads the files only when asked (an SMTP listener process with no session
  between two installs) thus serves what one that looked every second serves, not an older
  pair of its own. Limit (regress17 R1, not fixed): each server knows only the pair it
  loaded, so a server that starts while the pair does not load (an SMTP listener process
  the core starts again) serves the previous pair while the others serve the one they
  loaded, and one that had not loaded an install before a bad pair came less than a poll
  later keeps the pair before the install. Sharing the last good pair would need its key
  written outside tls/'s two pairs, which this does not do.
- The words for what is wrong with a pair (`ServerPair.problem`) and for what a service does
  about it are made here only, so the events, the log and the console's status page agree.
- A pair that loads may still be out of its dates (an expired certificate copied in, or one
  that aged out): OpenSSL serves it, clients that check it refuse it. `out_of_dates` is
  the one decision of that (review17 C4: it was written three times, each with its own
  boundary to keep); `dates_problem` says so, in the words the console's pages and the
  core's event share, of the certificate served: the previous one while cert.pem does not
  load (regress17 R2), not cert.pem's. It looks at every certificate of the chain served
  after it (`chain_after_leaf`), naming one out of its dates: clients refuse a chain with
  an expired intermediate as they refuse an expired leaf, and an older release's install
  took one; a CA's intermediate may also expire before the leaf (upgrade17 B2). So the
  warning before an expiry (`expires_soon`, `expiry_warning`) is of the certificate of the
  leaf and its chain that expires first, named when it is a chain certificate (certs18 1):
  once it has expired, clients refuse the chain. `served_certificate` is which certificate
  a server starting now serves, for every page and start line that speaks of its dates.
- A pair is judged by loading it as the servers do (`server_context`): OpenSSL's security
  level refuses more than a parse shows (a SHA-1 or MD5 signature in the chain, a small key,
  PEM lines indented), so `pair_problem` is how the console tries a pair before installing.
- Whatever reads the files in tls/ catches FILE_CONTENT_ERRORS, never fewer: cryptography
  parses a certificate's parts only when asked, so a certificate that loads can still raise
  on `public_key()` (a curve it lacks: secp112r1, SM2) or `subject` (a name that is not
  valid UTF-8). Explaining a pair (`_why_not`) is guarded once, as a whole: whatever in it
  raises, the pair is one that does not load, with a reason (review17 B1: a running core
  stopped, and neither core nor console started again).
- A cert.pem whose PEM is well formed but whose certificate does not parse (a subject that
  is not valid UTF-8, DER OpenSSL refuses) is said to be that, with cryptography's words
  (`unparsed_certificate`): OpenSSL reports it as a "PEM lib" error, as it does lines
  indented, which was the reason given for both (certs18 2). The layout is blamed only when
  a line of a BEGIN/END block does not start at the left margin. A file that ends inside a
  BEGIN/END block is said to be cut short (`cut_short`), naming the block: a leaf alone
  and a chain certificate after the leaf alike (review20b C1).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import os
import re
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InternalError, InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shared.paths import DataHome

__all__ = ["ensure_self_signed", "half_pair_message", "make_self_signed", "write_atomically",
           "previous_path", "server_context", "ServerPair", "load_server_pair", "pair_signature",
           "unusable_message", "is_self_signed", "public_key_fingerprint", "pair_problem",
           "pair_to_serve", "OutOfDates", "out_of_dates", "dates_problem", "expires_soon",
           "expiry_warning", "expiry_message", "EXPIRY_WARNING_DAYS", "out_of_dates_message",
           "chain_after_leaf", "served_certificate", "unparsed_certificate", "shown_name",
           "FILE_CONTENT_ERRORS", "IN_CERT_PEM", "IN_PREVIOUS", "LOADED_BEFORE"]

SELF_SIGNED_DAYS = 825  # the longest validity browsers accept for a server certificate
# A renewal through a CA takes days; Let's Encrypt's clients renew 30 days ahead, too.
EXPIRY_WARNING_DAYS = 30
PREVIOUS_SUFFIX = ".previous"
# Attribute names RFC 4514 has no short name for, as OpenSSL and browsers show them
# (cryptography would write the bare OID: 1.2.840.113549.1.9.1=admin@example.com).
NAME_SHOWN = {NameOID.EMAIL_ADDRESS: "emailAddress"}
# What reading a key or certificate file, or a part of one, raises for content that cannot be
# used (module rules): OSError (ssl.SSLError is one: OpenSSL refuses, or the file cannot be
# read), ValueError (not PEM, a part that does not parse), TypeError (a passphrase),
# UnsupportedAlgorithm (a key type, curve or signature cryptography lacks), InternalError
# (OpenSSL failing under cryptography).
FILE_CONTENT_ERRORS = (OSError, ValueError, TypeError, UnsupportedAlgorithm, InternalError)


def make_self_signed(hostname: str, key=None, days: int = SELF_SIGNED_DAYS) -> tuple[bytes, bytes]:
    """A new RSA-2048 key (unless given) and a self-signed certificate for `hostname` (a DNS
    name in ASCII, A-labels for an internationalised one, or an IP address).

    Returns (key_pem, cert_pem); raises ValueError for a name a certificate cannot carry.
    """
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Mailmoat self-signed")])
    now = datetime.datetime.now(datetime.timezone.utc)
    try:  # RFC 6125 §6.2.1: clients match an IP address only against an iPAddress entry
        own: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        own = x509.DNSName(hostname)
    alt_names: list[x509.GeneralName] = [own]
    if hostname != "localhost":
        alt_names.append(x509.DNSName("localhost"))
    for address in ("127.0.0.1", "::1"):
        if x509.IPAddress(ipaddress.ip_address(address)) not in alt_names:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(address)))
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def ensure_self_signed(key_path: Path, cert_path: Path, hostname: str) -> bool:
    """Create a self-signed key + certificate when neither file is there; True when created.

    Never replaces a key.pem or cert.pem that is there, alone included (`half_pair_message`
    says what is wrong then): a restore may bring back a key without its certificate, and a
    private key a CA certified cannot be made again. A symbolic link counts as there, even
    when it points nowhere."""
    if any(os.path.lexists(path) for path in (key_path, cert_path)):
        return False
    key_pem, cert_pem = make_self_signed(hostname)
    write_atomically(key_path, key_pem)
    write_atomically(cert_path, cert_pem, 0o644)
    return True


def half_pair_message(key_path: Path, cert_path: Path) -> str | None:
    """What to tell an administrator when only one of key.pem and cert.pem is there (which
    `ensure_self_signed` leaves alone); None when both or neither are."""
    there = {path: os.path.lexists(path) for path in (key_path, cert_path)}
    if there[key_path] == there[cert_path]:
        return None
    if there[key_path]:
        present, missing = key_path, cert_path
        repair = (f"put the certificate issued for this key in {cert_path} (PEM, chain after "
                  "it), or install it in the console's Certificate Management page")
    else:
        present, missing = cert_path, key_path
        repair = (f"put this certificate's private key in {key_path} (PEM, without a "
                  "passphrase, mode 0600)")
    return (f"{missing.name} is missing: {present.parent} holds {present.name} alone, and "
            f"init leaves both files as they are (it makes a self-signed pair only when "
            f"neither is there). To repair it, {repair}; or move {present.name} away and "
            f"run `mailmoat init` again for a new self-signed pair (docs/operations.md, "
            f"Troubleshooting: a certificate that does not load)")


def previous_path(path: Path) -> Path:
    """Where the console keeps the file `path` replaced (key.pem → key.pem.previous)."""
    return path.with_name(path.name + PREVIOUS_SUFFIX)


def is_self_signed(cert: x509.Certificate) -> bool:
    """True when `cert` names itself as issuer and its signature verifies with its own key."""
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


# The order names are shown in, the most specific first, as browsers show a subject
# (CN=mail.example.com, OU=IT, O=Example, L=Berlin, ST=Berlin, C=DE, emailAddress=…);
# other attributes follow in the certificate's order.
_SHOWN_ORDER = {oid: rank for rank, oid in enumerate((
    NameOID.COMMON_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.ORGANIZATION_NAME,
    NameOID.LOCALITY_NAME, NameOID.STATE_OR_PROVINCE_NAME, NameOID.COUNTRY_NAME,
    NameOID.EMAIL_ADDRESS))}


def shown_name(name: x509.Name) -> str:
    """A certificate's subject or issuer as pages and messages show it: in `_SHOWN_ORDER`,
    whichever order the certificate has them in (CAs write C first, requests made here CN
    first; RFC 4514's string reverses the certificate's order, which put the CN last for the
    latter: certs17 C11). RFC 4514's escaping of each value is kept."""
    rdns = sorted(name.rdns, key=lambda rdn: min(
        (_SHOWN_ORDER.get(attribute.oid, len(_SHOWN_ORDER)) for attribute in rdn),
        default=len(_SHOWN_ORDER)))
    return ", ".join(rdn.rfc4514_string(NAME_SHOWN) for rdn in rdns)


def public_key_fingerprint(key) -> str:
    """SHA-256 of a (public or private) key's SubjectPublicKeyInfo, as certificate
    fingerprints are written: what events name a key by, never the key itself."""
    public = key.public_key() if hasattr(key, "private_bytes") else key
    digest = hashes.Hash(hashes.SHA256())
    digest.update(public.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    return digest.finalize().hex(":").upper()


@dataclass(frozen=True)
class OutOfDates:
    """A certificate out of its dates: `expired` at `date`, or else valid only from `date`."""

    expired: bool
    date: datetime.datetime


def out_of_dates(cert: x509.Certificate, now: datetime.datetime) -> OutOfDates | None:
    """Whether `cert` is out of its dates at `now`; None while it is valid. The one place
    that decides it, for the pages, the events and the install's refusals alike: at its
    notAfter instant a certificate has expired, at its notBefore instant it is valid."""
    if cert.not_valid_after_utc <= now:
        return OutOfDates(True, cert.not_valid_after_utc)
    if cert.not_valid_before_utc > now:
        return OutOfDates(False, cert.not_valid_before_utc)
    return None


# Which certificate `dates_problem` speaks of: the one served (regress17 R2: the previous
# pair, served while cert.pem does not load, expired and nothing said so).
IN_CERT_PEM = "the certificate in cert.pem"
IN_PREVIOUS = (f"the previous certificate, in cert.pem{PREVIOUS_SUFFIX} (served while cert.pem "
               "does not load),")
LOADED_BEFORE = ("the certificate loaded before cert.pem stopped loading (served while "
                 "cert.pem does not load),")


def chain_after_leaf(pem: bytes) -> list[x509.Certificate]:
    """The certificates after the first in `pem` (a cert.pem: the leaf, then its chain), as
    the servers send them; [] when there are none or they cannot be read (the leaf's own
    reading says what is wrong)."""
    try:
        return x509.load_pem_x509_certificates(pem)[1:]
    except FILE_CONTENT_ERRORS:
        return []


def dates_problem(cert: x509.Certificate, now: datetime.datetime,
                  which: str = IN_CERT_PEM,
                  chain: list[x509.Certificate] | tuple = ()) -> str | None:
    """What is wrong with the dates of the certificate, or of a certificate of the `chain`
    served after it, at `now` (expired, or valid only from a later date) and what it means
    for clients; None while all are valid. `which`: the words for the certificate, as
    served (IN_CERT_PEM, IN_PREVIOUS, LOADED_BEFORE). The fix is the caller's to add: where
    to install another depends on who reads it."""
    for index, each in enumerate([cert, *chain]):
        late = out_of_dates(each, now)
        if late is None:
            continue
        if late.expired:
            what = f"expired on {late.date:%Y-%m-%d %H:%M} UTC"
        else:
            what = f"is not valid before {late.date:%Y-%m-%d %H:%M} UTC"
        if index:
            which = f"the chain certificate {shown_name(each.subject)} served after {which}"
        return (f"{which} {what}: the console's HTTPS and the SMTP STARTTLS still offer it, "
                "but browsers and mail servers that check certificates refuse it")
    return None


def out_of_dates_message(cert: x509.Certificate, now: datetime.datetime,
                         which: str = IN_CERT_PEM,
                         chain: list[x509.Certificate] | tuple = ()) -> str | None:
    """The event (and log) text when the certificate served, or one of its `chain`, is out
    of its dates at `now` (`dates_problem`), with how to put it right; None while all are
    valid."""
    problem = dates_problem(cert, now, which, chain)
    if problem is None:
        return None
    return (f"{problem}. To fix it, install a valid certificate on the console's Certificate "
            "Management page (Configuration › Setup) or put a valid key.pem and cert.pem in "
            "tls/")


def expires_soon(cert: x509.Certificate, now: datetime.datetime,
                 chain: list[x509.Certificate] | tuple = ()) -> x509.Certificate | None:
    """The certificate of `cert` and the `chain` served after it that expires first, when
    all are valid at `now` and that one is not EXPIRY_WARNING_DAYS from then; else None
    (one out of its dates is `dates_problem`'s). The leaf, when the two expire together."""
    served = [cert, *chain]
    if any(out_of_dates(each, now) is not None for each in served):
        return None
    first = min(served, key=lambda each: each.not_valid_after_utc)
    if first.not_valid_after_utc <= now + datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        return first
    return None


def expiry_warning(cert: x509.Certificate, now: datetime.datetime,
                   which: str = IN_CERT_PEM,
                   chain: list[x509.Certificate] | tuple = ()) -> str | None:
    """Which certificate served expires within EXPIRY_WARNING_DAYS of `now`
    (`expires_soon`: the leaf, or the chain certificate that expires first, by name), when,
    and in how many days; None when none does. `which`: as for `dates_problem`. The words
    the console's pages and `mailmoat run`'s start line share; the advice is the caller's."""
    first = expires_soon(cert, now, chain)
    if first is None:
        return None
    if first is not cert:
        which = f"the chain certificate {shown_name(first.subject)} served after {which}"
    days = (first.not_valid_after_utc - now).days
    left = f"in {days} day{'s' * (days != 1)}" if days else "within a day"
    return f"{which} expires on {first.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, {left}"


def expiry_message(cert: x509.Certificate, now: datetime.datetime,
                   which: str = IN_CERT_PEM,
                   chain: list[x509.Certificate] | tuple = ()) -> str | None:
    """The log text (`mailmoat run`'s start line) when the certificate served, or one of
    its `chain`, expires within EXPIRY_WARNING_DAYS (`expiry_warning`), with what to do;
    None otherwise."""
    warning = expiry_warning(cert, now, which, chain)
    if warning is None:
        return None
    renewal = ("a renewed certificate" if expires_soon(cert, now, chain) is cert
               else "its current chain (or a renewed certificate with it)")
    return (f"{warning}; then browsers and mail servers that check certificates refuse it. "
            f"Ask your CA for {renewal} now and install it on the console's Certificate "
            "Management page (Configuration › Setup); the servers use it without a restart")


def served_certificate(home: DataHome, pair: ServerPair
                       ) -> tuple[x509.Certificate, str, list[x509.Certificate]] | None:
    """The certificate a server starting now serves, as `load_server_pair` gave `pair`:
    cert.pem's when the pair loads, else the previous pair's (regress17 R2), with the words
    for which it is (IN_CERT_PEM, IN_PREVIOUS) and the chain after it; None when nothing is
    served or the file cannot be read (replaced since it loaded)."""
    if pair.context is None:
        return None
    path, which = ((home.tls_cert, IN_CERT_PEM) if pair.problem is None
                   else (previous_path(home.tls_cert), IN_PREVIOUS))
    try:
        pem = path.read_bytes()
        return x509.load_pem_x509_certificate(pem), which, chain_after_leaf(pem)
    except FILE_CONTENT_ERRORS:
        return None


# --- serving ------------------------------------------------------------------------------

PASSPHRASE_REFUSED = "key.pem is protected by a passphrase, which a server cannot type"


def no_passphrase() -> bytes:
    """The `password` of every load of key.pem: a key under a passphrase does not load.
    Without it OpenSSL asks for the passphrase on the terminal, and `mailmoat run` in a
    terminal froze, deaf to Ctrl-C, when such a key was copied into tls/ (review17b B1)."""
    raise ssl.SSLError(PASSPHRASE_REFUSED)


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or later) for the pair; raises ssl.SSLError or OSError
    when it does not load."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path, password=no_passphrase)
    return context


@dataclass(frozen=True)
class ServerPair:
    """What a TLS server can use from tls/.

    `problem` is None when key.pem + cert.pem loaded (`context` is theirs); otherwise it says
    why they did not, and `context` is the previous pair's, or None when that does not load
    either. `previous_seen`: the previous pair's files as they were once this was loaded
    (`_signature`), which tells whether the console kept a newer one since."""

    context: ssl.SSLContext | None
    problem: str | None = None
    previous_seen: tuple | None = None

    @property
    def is_previous(self) -> bool:
        return self.problem is not None and self.context is not None


def load_server_pair(home: DataHome) -> ServerPair:
    """tls/key.pem + cert.pem as a server context, else the previous pair, else none."""
    # The previous pair is looked at after loading: an install between the two then makes
    # it look older than it is, never newer (pair_to_serve would serve it over a newer one).
    previous = (previous_path(home.tls_cert), previous_path(home.tls_key))
    try:
        context = server_context(home.tls_cert, home.tls_key)
        return ServerPair(context, previous_seen=_signature(previous))
    except FILE_CONTENT_ERRORS as exc:
        problem = _why_not(home.tls_key, home.tls_cert, exc)
    try:
        context = server_context(*previous)
    except FILE_CONTENT_ERRORS:
        context = None
    return ServerPair(context, problem, _signature(previous))


def pair_to_serve(pair: ServerPair, serving: ServerPair | None) -> tuple[ServerPair, bool]:
    """What a server that serves `serving` (None: it is starting) uses now that tls/ gave
    `pair`, which did not load (module rules): `pair`, i.e. the previous pair or nothing,
    unless the server has a pair and the console kept no other previous pair since it loaded
    it — then `serving`, its own. Also whether that is a pair the server had, not the
    previous pair: `unusable_message`'s `kept`."""
    if serving is None or serving.context is None:
        return pair, False
    if pair.context is not None and pair.previous_seen != serving.previous_seen:
        return pair, False
    # `serving` may be the previous pair itself, loaded before: unless it no longer loads,
    # that is what the server uses, not something it kept
    return serving, serving.problem is None or pair.context is None


def pair_problem(key_pem: bytes, cert_pem: bytes, directory: Path) -> str | None:
    """Why this key and certificate would not load in a server, in the words of
    `ServerPair.problem`; None when they load. They are tried as files in a private
    temporary directory made in `directory` (tls/: a private key is written nowhere else),
    removed before this returns."""
    with tempfile.TemporaryDirectory(dir=directory, prefix=".try-") as scratch:
        key_path, cert_path = Path(scratch) / "key.pem", Path(scratch) / "cert.pem"
        write_atomically(key_path, key_pem, 0o600)
        write_atomically(cert_path, cert_pem, 0o600)
        try:
            server_context(cert_path, key_path)
        except FILE_CONTENT_ERRORS as exc:
            return _why_not(key_path, cert_path, exc)
    return None


def pair_signature(home: DataHome) -> tuple:
    """Changes whenever key.pem or cert.pem is replaced or rewritten (a rename changes the
    inode, an edit in place the time and size): when a server should load the pair again."""
    return _signature((home.tls_cert, home.tls_key))


def _signature(paths) -> tuple:
    signature = []
    for path in paths:
        try:
            st = path.stat()
            signature.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except FileNotFoundError:
            signature.append(None)
        except OSError as exc:      # tls/ unreadable (its mode changed): loading says why
            signature.append(("error", exc.errno))
    return tuple(signature)


# What every text about a pair that does not load begins with: the events, the log, the
# console's pages and `mailmoat run`'s start lines (review20b D1: the banner had a copy)
PAIR_DOES_NOT_LOAD = "the key and certificate in tls/ do not load"


def unusable_message(service: str, pair: ServerPair, *, kept: bool = False,
                     off: str | None = None) -> str:
    """The event (and log) text when key.pem + cert.pem do not load: what is wrong, what
    `service` ("HTTPS", "STARTTLS") does meanwhile, and how to put it right. `kept`: the
    process goes on with a context it loaded before the files changed; `off`: what it
    means that there is no pair at all (default "SERVICE is off")."""
    if kept:
        meanwhile = f"{service} goes on with the certificate it loaded before"
    elif pair.context is not None:
        meanwhile = (f"{service} uses the previous pair (key.pem{PREVIOUS_SUFFIX} and "
                     f"cert.pem{PREVIOUS_SUFFIX})")
    else:
        meanwhile = off or f"{service} is off"
    return (f"{PAIR_DOES_NOT_LOAD}: {pair.problem}. Meanwhile "
            f"{meanwhile}. To fix it, install a certificate on the console's Certificate "
            "Management page (Configuration › Setup) or put a matching key.pem and cert.pem "
            "in tls/")


def _why_not(key_path: Path, cert_path: Path, exc: Exception) -> str:
    """Why the pair did not load, in an administrator's words (`exc`: what loading raised).
    Never raises (module rules): what the explanation meets that it cannot read is the
    reason itself."""
    try:
        return _reason(key_path, cert_path, exc)
    except FILE_CONTENT_ERRORS as error:
        return (f"{cert_path.name} or {key_path.name} holds something Mailmoat cannot read "
                f"({error or type(error).__name__}; loading them: {exc})")


def _reason(key_path: Path, cert_path: Path, exc: Exception) -> str:
    texts = {}
    for path in (cert_path, key_path):
        try:
            texts[path] = path.read_bytes()
        except FileNotFoundError:
            return f"{path.name} is missing"
        except OSError as error:
            return f"{path.name} cannot be read ({error.strerror or error})"
    try:
        cert = x509.load_pem_x509_certificate(texts[cert_path])
    except ValueError:
        return (unparsed_certificate(texts[cert_path], cert_path.name)
                or cut_short(texts[cert_path], cert_path.name)
                or f"{cert_path.name} holds no certificate in PEM format")
    try:
        key = serialization.load_pem_private_key(texts[key_path], password=None)
    except TypeError:
        return (f"{key_path.name} is protected by a passphrase; Mailmoat needs the key "
                "without one")
    except UnsupportedAlgorithm:
        return f"{key_path.name} holds a key of a type Mailmoat cannot use{_KEY_TYPES}"
    except ValueError:
        return (cut_short(texts[key_path], key_path.name)
                or f"{key_path.name} holds no private key in PEM format")
    try:
        cert_key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return (f"the certificate in {cert_path.name} is for a key of a type Mailmoat cannot "
                f"use{_KEY_TYPES}")
    if public_key_fingerprint(key) != public_key_fingerprint(cert_key):
        return f"{key_path.name} is not the private key of the certificate in {cert_path.name}"
    reason = getattr(exc, "reason", None)
    if reason is None and "PEM lib" in str(exc):
        # OpenSSL says "PEM lib" both for a certificate it cannot parse and for a layout its
        # PEM reader refuses (lines indented, as a mail client quotes them), which
        # cryptography's lazy, lenient parse above lets through (module rules, certs18 2)
        unparsed = unparsed_certificate(texts[cert_path], cert_path.name)
        if unparsed is not None:
            return unparsed
        for path in (cert_path, key_path):
            if _off_margin(texts[path]):
                return (f"OpenSSL cannot read {path.name} as PEM (lines indented, or other "
                        "text inside a BEGIN/END block); each line must start at the left "
                        "margin, as it was sent")
    # a chain certificate cut short: the leaf parses, OpenSSL's PEM reader says BAD_END_LINE
    return (_security_level_refusal(reason, texts[cert_path], key)
            or cut_short(texts[cert_path], cert_path.name)
            or f"OpenSSL refuses them ({reason or exc})")


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----",
                              re.S)
_PEM_BLOCK = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----.*?-----END [A-Z0-9 ]+-----", re.S)
# The parts of a certificate cryptography reads only when asked (module rules); OpenSSL
# reads them with the rest, and refuses the whole file for one that does not parse
_PARTS_READ_LATER = (("subject", lambda cert: cert.subject),
                     ("issuer", lambda cert: cert.issuer),
                     ("extensions", lambda cert: cert.extensions))
_WORDS_SHOWN = 200   # of cryptography's message: a ParseError names the kind and place


def unparsed_certificate(pem: bytes, holder: str = "cert.pem") -> str | None:
    """Why a certificate in `pem` does not parse though its PEM is well formed — DER that
    cryptography refuses, or a part it reads only when asked (a subject that is not valid
    UTF-8) — in words that name the certificate and the part and give cryptography's,
    briefly; None when each one parses, or when a block is no base64 at all (a layout
    matter, which the caller says). `holder`: the words for what holds `pem`."""
    for index, block in enumerate(_PEM_CERTIFICATE.findall(pem)):
        which = _which_certificate(index)
        try:
            der = base64.b64decode(b"".join(block.split()), validate=True)
        except binascii.Error:
            return None
        failed = None
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:   # cut short, perhaps, in a copy
            failed = which, exc, ("copy it again whole, as it was sent, or ask its issuer "
                                  "for one encoded correctly")
        else:
            for part, read in _PARTS_READ_LATER:
                try:
                    read(cert)
                except ValueError as exc:
                    failed = (f"the {part} of {which}", exc,
                              "ask its issuer for one encoded correctly")
                    break
        if failed is not None:
            what, exc, fix = failed
            words = str(exc) or type(exc).__name__
            if len(words) > _WORDS_SHOWN:
                words = words[:_WORDS_SHOWN - 1] + "…"
            return (f"{holder} holds well-formed PEM, but {what} in it does not parse "
                    f"(cryptography: {words}); {fix}")
    return None


_PEM_BEGIN = re.compile(rb"^[ \t]*-----BEGIN ([A-Z0-9 ]+)-----", re.M)
_PEM_END = re.compile(rb"^[ \t]*-----END [A-Z0-9 ]+-----", re.M)


def _which_certificate(index: int) -> str:
    """The words for the certificate at `index` of a cert.pem (0: the leaf)."""
    return ("the certificate" if index == 0
            else f"certificate {index + 1} (of the chain after the first)")


def cut_short(pem: bytes, holder: str) -> str | None:
    """Why `pem` does not load when it ends inside a BEGIN/END block — its END line lost,
    as a copy cut short loses it — naming the block (the certificate, a chain certificate,
    the key), the same words for a leaf alone and one with its chain after it (review20b
    C1: with a chain, the leaf parsed and OpenSSL's "BAD_END_LINE" was all that was said);
    None when every block is closed. A block before the last whose END line is missing
    (the next BEGIN comes first) is named too (review20f R3: a chain with its middle
    certificate cut was read as the others). `holder`: the file's name."""
    begins = list(_PEM_BEGIN.finditer(pem))
    for index, begin in enumerate(begins):
        until = begins[index + 1].start() if index + 1 < len(begins) else len(pem)
        if _PEM_END.search(pem, begin.end(), until):
            continue
        label = begin.group(1).decode("ascii")
        if label == "CERTIFICATE":
            what = _which_certificate(sum(b.group(1) == b"CERTIFICATE" for b in begins[:index]))
        else:
            what = "the key" if label.endswith("KEY") else f"its {label} block"
        where = "ends inside" if until == len(pem) else "loses the end of"
        return (f"{holder} {where} {what}, before its -----END {label}----- line, as a copy "
                "cut short does; copy it again whole, as it was sent")
    return None


def _off_margin(pem: bytes) -> bool:
    """Whether a line of a BEGIN/END block in `pem`, those two lines included, does not
    start at the left margin: OpenSSL's PEM reader refuses it; cryptography's forgives it."""
    for block in _PEM_BLOCK.finditer(pem):
        start = pem.rfind(b"\n", 0, block.start()) + 1
        if any(line[:1].isspace() or (line and number == 0 and start != block.start())
               for number, line in enumerate(pem[start:block.end()].splitlines())):
            return True
    return False


# What a server certificate's key can be: what cryptography reads and browsers and mail
# servers accept (not every curve OpenSSL knows: SM2, secp112r1 …)
_KEY_TYPES = (" (an RSA key of 2048 bits or more, or an EC key on P-256, P-384 or P-521, "
              "is what clients accept)")

_WEAK_DIGESTS = {"sha1": "SHA-1", "md5": "MD5", "md4": "MD4", "md2": "MD2"}


def _security_level_refusal(reason: str | None, cert_pem: bytes, key) -> str | None:
    """What OpenSSL's security level refused (a weak signature or key in the chain), in
    words that name the certificate and what to ask the CA for; None for other reasons."""
    if reason in ("CA_MD_TOO_WEAK", "EE_MD_TOO_WEAK"):
        try:
            chain = x509.load_pem_x509_certificates(cert_pem)
        except ValueError:
            chain = []
        for cert in chain:
            try:
                digest = cert.signature_hash_algorithm
            except UnsupportedAlgorithm:
                continue
            name = _WEAK_DIGESTS.get(digest.name if digest else "")
            if name and not is_self_signed(cert):   # a root's own signature is not checked
                return (f"the certificate {shown_name(cert.subject)} is signed with "
                        f"{name}, which OpenSSL refuses as too weak (and browsers too); ask "
                        "the CA for a certificate and chain signed with SHA-256")
        return ("a certificate of the chain is signed with a digest OpenSSL refuses as too "
                "weak; ask the CA for a certificate and chain signed with SHA-256")
    if reason == "EE_KEY_TOO_SMALL":
        return (f"the key has only {getattr(key, 'key_size', '?')} bits, which OpenSSL "
                "refuses as too small; make a new request (2048 bits) and have it signed")
    if reason == "CA_KEY_TOO_SMALL":
        return ("a certificate of the chain has a key OpenSSL refuses as too small; ask the "
                "CA for its current chain")
    return None
