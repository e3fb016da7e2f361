"""Spam definitions: the heuristic engine's rules and trained model as one versioned set.

What it owns
    A spam definitions directory holds `manifest.json` — `{"type": "spam", "version":
    "YYYY-MM-DD", "revision": N, "files": {name: sha256}}`, the fields of a definitions
    package manifest (SPEC §3 LiveUpdate) — plus `rules.json` (heuristic_rules.py) and
    `model.json.gz` (weights, bias and score calibration, learner.py / engine.py; and
    "scoring": {"windows": {"words": N, "delta": D}} when the set is read in windows,
    windows.py — a set without it scores the plain sum —, with "off_window": "spam_side" in
    it when a link's URL counts only towards spam there (windows.py rule 5), and "urls":
    "spam_side" too when every URL does (rule 6), "whole_ham_cap": C when what is read
    whole counts towards ham at most C there (rule 7), and "delisted3": true in it when a
    message a mailing list relayed is read as the list received it, delist.py; the keys of earlier
    readings, "delisted" and "delisted2", and the withdrawn "sender_names", are refused;
    "chars": {"order", "lambda", "clip", "max_chars", "denominator"[, "prior",
    "min_ascii_share", "min_english_share", "drop_urls"]} when the set adds the bounded
    character model, whose tables are then the set's `chars.npz`, chars.py). A key of
    "scoring" or of its "windows" that this Mailmoat does not know is refused.
    `load(directory)` checks the hashes and returns `SpamDefinitions`; `current(installed)`
    returns the definitions in force: the installed set in the directory `installed` when it
    is a valid one, else the default set shipped inside the package
    (core/scan/antispam/data/spam/), so a fresh install scores mail out of the box.
    `write(directory, ...)` is what the training script uses to produce a set.

Packages: a spam definitions package is a shared/definitions.py package of type "spam"
holding rules.json and model.json.gz, and chars.npz when the model's scoring has "chars"
(its unpacked size bounded: chars.py MAX_TABLE_BYTES) (`mailmoat definitions build DIR --key
...` on a directory written by tools/train_spam_model.py). `install` verifies its signature,
unpacks it, loads the unpacked set with `load` and only then puts it under
<data home>/definitions/spam/v<version>-r<revision>/ with `current` pointing at it; the
installed manifest lists the files as {name: sha256}, which `load` reads as well as the
shipped form. The core's scan service (core/scan/service.py) follows definitions/spam/current,
loads the set itself (shared/definitions.py `in_force`) and hands its directory to the
workers with each message, as the runtime setting RUNTIME_DIR (as it does for the virus
definitions), so a new set is used from the next message on. An installed set that no longer
loads is not handed over: the packaged set scores, and the core says so.

Rules
    1. A set whose manifest, hashes, rules or model do not check out is refused
       (DefinitionsError naming the file and the problem); `current()` then scores with
       the packaged set, which is trusted as part of the package.
    2. `current()` caches per process and directory, and reloads when the manifest's mtime
       changes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

from core.scan.antispam.chars import DENOMINATORS, MAX_CHARS, MAX_ORDER, Chars, Tables
from core.scan.antispam.delist import DELISTED_KEY
from core.scan.antispam.heuristic_rules import RuleSet, RuleSetError
from core.scan.antispam.windows import OFF_WINDOW_KEY, SIDES, URLS_KEY, WHOLE_CAP_KEY, Windows

__all__ = ["SpamDefinitions", "DefinitionsError", "load", "current", "write",
           "PACKAGED_DIR", "RUNTIME_DIR", "MODEL_FILE", "RULES_FILE", "MANIFEST_FILE",
           "CHARS_FILE", "chars_settings"]

PACKAGED_DIR = Path(__file__).parent / "data" / "spam"
# not a setting: the core adds the installed set's directory to each message's settings copy
RUNTIME_DIR = "runtime.spam.definitions"
MANIFEST_FILE = "manifest.json"
RULES_FILE = "rules.json"
MODEL_FILE = "model.json.gz"
CHARS_FILE = "chars.npz"        # chars.py's tables, when the model's scoring has "chars"
MIN_WINDOW_WORDS = 10       # a window of a few words would read every word alone


class DefinitionsError(ValueError):
    """The definitions set is incomplete, altered or not a spam set."""


@dataclass(frozen=True)
class SpamDefinitions:
    version: str                    # the definitions date, "YYYY-MM-DD"
    revision: int
    rules: RuleSet
    bias: float
    weights: dict[str, float]
    z90: float                      # the raw score that score 90 stands for (engine.py)
    directory: Path
    info: dict                      # training facts (corpus, split, counts)
    windows: Windows | None = None  # windows.py; None: the plain sum
    delisted: bool = False          # delist.py: relayed mail read as the list received it
    chars: Chars | None = None      # chars.py: the bounded character model; None: without

    @property
    def label(self) -> str:
        """What events and the Status page show: "2026-11-27 rev 1"."""
        return f"{self.version} rev {self.revision}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(directory: Path) -> SpamDefinitions:
    """The set in `directory`; raises DefinitionsError naming the file and the problem
    (rule 1). This is the one loader: the workers score with what it returns, and
    `mailmoat definitions install` and the core's definitions watcher check a set with it
    (shared/definitions.py), so a set install accepts is a set the engine can use."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise DefinitionsError(f"{MANIFEST_FILE}: not readable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("type") != "spam":
        kind = manifest.get("type") if isinstance(manifest, dict) else None
        raise DefinitionsError(f"{MANIFEST_FILE}: not a spam definitions set (type {kind!r})")
    files = manifest.get("files") or {}
    if isinstance(files, list):        # the package form: [{"name", "size", "sha256"}]
        files = {e.get("name"): e.get("sha256") for e in files if isinstance(e, dict)}
    if not isinstance(files, dict):
        raise DefinitionsError(f"{MANIFEST_FILE}: files is not a list of files")
    for name in (RULES_FILE, MODEL_FILE):
        if name not in files:
            raise DefinitionsError(f"{name}: missing (a spam set holds {RULES_FILE} and "
                                   f"{MODEL_FILE}; this one holds "
                                   f"{', '.join(sorted(map(str, files))) or 'nothing'})")
        try:
            if _sha256(directory / name) != files[name]:
                raise DefinitionsError(f"{name}: does not match its hash")
        except OSError as exc:
            raise DefinitionsError(f"{name}: {exc.strerror}") from None
    try:
        rules = RuleSet.from_json(json.loads((directory / RULES_FILE).read_text()))
    except (RuleSetError, ValueError, TypeError, AttributeError, OSError) as exc:
        raise DefinitionsError(f"{RULES_FILE}: {exc}") from None
    try:
        model = json.loads(gzip.decompress((directory / MODEL_FILE).read_bytes()))
        bias, z90 = float(model["bias"]), float(model["z90"])
        weights = {str(k): float(v) for k, v in model["weights"].items()}
        info = model.get("info", {})
        windows, delisted, chars = _scoring(model.get("scoring", {}))
    except (KeyError, TypeError, ValueError, AttributeError, OSError, EOFError,
            OverflowError, zlib.error) as exc:      # OverflowError: a 400-digit number
        raise DefinitionsError(f"{MODEL_FILE}: {type(exc).__name__}: {exc}") from None
    if not (math.isfinite(bias) and math.isfinite(z90) and z90 > 0
            and all(math.isfinite(w) for w in weights.values())):
        raise DefinitionsError(f"{MODEL_FILE}: bias, z90 and weights must be finite numbers "
                               f"and z90 above 0")
    tables = _tables(directory, files, chars)
    try:
        version, revision = str(manifest["version"]), int(manifest.get("revision", 1))
    except (KeyError, TypeError, ValueError) as exc:
        raise DefinitionsError(f"{MANIFEST_FILE}: bad version or revision ({exc})") from None
    return SpamDefinitions(version=version, revision=revision, rules=rules, bias=bias,
                           weights=weights, z90=z90, directory=directory, info=info,
                           windows=windows, delisted=delisted,
                           chars=None if chars is None else Chars(**chars, tables=tables))


def _scoring(scoring: dict) -> tuple[Windows | None, bool, dict | None]:
    """The model's "scoring" (windows.py, delist.py, chars.py); a way of
    scoring this engine does not know is refused, not read as the plain sum a later set's
    calibration was not made for."""
    unknown = sorted(set(scoring) - {"windows", OFF_WINDOW_KEY, URLS_KEY, WHOLE_CAP_KEY,
                                     DELISTED_KEY, "chars"})
    if unknown:
        raise ValueError(f"scoring {', '.join(map(str, unknown))} is unknown to this Mailmoat")
    delisted = scoring.get(DELISTED_KEY, False)
    if not isinstance(delisted, bool):
        raise ValueError(f"scoring {DELISTED_KEY} must be true or false, not {delisted!r}")
    windows = _windows(scoring.get("windows"), scoring.get(OFF_WINDOW_KEY, SIDES[0]),
                       scoring.get(URLS_KEY, SIDES[0]), scoring.get(WHOLE_CAP_KEY, _NO_CAP))
    return windows, delisted, chars_settings(scoring.get("chars"))


def chars_settings(value) -> dict | None:
    """The "chars" settings (chars.py) as Chars' fields, or None; ValueError naming the
    rule. The one reading of them: the loader's, and the training tool's (its CHARS, checked
    when it starts)."""
    if value is None:
        return None
    required = {"order", "lambda", "clip", "max_chars", "denominator"}
    optional = {"prior", "min_ascii_share", "min_english_share", "drop_urls"}
    if not isinstance(value, dict) or not required <= set(value) <= required | optional:
        raise ValueError("scoring chars must be {order, lambda, clip, max_chars, "
                         "denominator[, prior, min_ascii_share, min_english_share, "
                         f"drop_urls]}}, not {value!r}")
    order, lam, clip = value["order"], value["lambda"], value["clip"]
    max_chars, denominator = value["max_chars"], value["denominator"]
    prior, share = value.get("prior", 0), value.get("min_ascii_share", 0)
    english, drop_urls = value.get("min_english_share", 0), value.get("drop_urls", False)
    if not (type(order) is int and 1 <= order <= MAX_ORDER
            and type(max_chars) is int and 1 <= max_chars <= MAX_CHARS
            and all(type(x) in (int, float) and math.isfinite(x) for x in (lam, clip))
            and lam >= 0 and clip > 0 and denominator in DENOMINATORS
            # any prior only shrinks the term; one past the longest text read does nothing more
            and type(prior) is int and 0 <= prior <= MAX_CHARS
            and all(type(x) in (int, float) and 0 <= x <= 1 for x in (share, english))
            and type(drop_urls) is bool):
        raise ValueError(f"scoring chars must have an order of 1 to {MAX_ORDER}, a lambda "
                         f"of 0 or more, a clip above 0, max_chars of 1 to {MAX_CHARS}, a "
                         f"denominator {' or '.join(map(repr, DENOMINATORS))}, a prior "
                         f"of 0 to {MAX_CHARS} bytes, a min_ascii_share and a "
                         "min_english_share of 0 to 1 and drop_urls true or false (order "
                         f"{order!r}, lambda {lam!r}, clip {clip!r}, max_chars {max_chars!r}, "
                         f"denominator {denominator!r}, prior {prior!r}, min_ascii_share "
                         f"{share!r}, min_english_share {english!r}, drop_urls "
                         f"{drop_urls!r})")
    return {"order": order, "lam": float(lam), "clip": float(clip), "max_chars": max_chars,
            "denominator": denominator, "prior": prior, "min_share": float(share),
            "min_english": float(english), "drop_urls": drop_urls}


def _tables(directory: Path, files: dict, chars: dict | None) -> Tables | None:
    """The set's chars.npz when its scoring has "chars" (checked against its hash and
    read as chars.py's tables); a chars.npz a set lists without "chars" is refused too,
    as tables the scoring would silently leave unread."""
    if chars is None:
        if CHARS_FILE in files:
            raise DefinitionsError(f"{CHARS_FILE}: listed, but {MODEL_FILE}'s scoring has "
                                   f"no chars to read it with")
        return None
    if CHARS_FILE not in files:
        raise DefinitionsError(f"{CHARS_FILE}: missing ({MODEL_FILE}'s scoring has chars, "
                               f"whose tables it holds)")
    try:
        data = (directory / CHARS_FILE).read_bytes()
    except OSError as exc:
        raise DefinitionsError(f"{CHARS_FILE}: {exc.strerror}") from None
    if hashlib.sha256(data).hexdigest() != files[CHARS_FILE]:
        raise DefinitionsError(f"{CHARS_FILE}: does not match its hash")
    try:
        return Tables.from_bytes(data, chars["order"])
    except ValueError as exc:
        raise DefinitionsError(f"{CHARS_FILE}: {exc}") from None


_NO_CAP = object()      # "whole_ham_cap" absent: a null is refused, as other keys' are


def _windows(value, off_window, urls, whole_cap=_NO_CAP) -> Windows | None:
    for key, side in ((OFF_WINDOW_KEY, off_window), (URLS_KEY, urls)):
        if side not in SIDES:
            raise ValueError(f"scoring {key} must be {' or '.join(SIDES)} (how text evidence "
                             f"counts, windows.py rules 5 and 6), not {side!r}")
        if value is None and side != SIDES[0]:
            raise ValueError(f"scoring {key} reads windows, and the set has none")
    if whole_cap is not _NO_CAP:
        if not (type(whole_cap) in (int, float) and math.isfinite(whole_cap)
                and whole_cap >= 0):
            raise ValueError(f"scoring {WHOLE_CAP_KEY} must be a number of 0 or more (how "
                             f"much what is read whole counts towards ham, windows.py rule "
                             f"7), not {whole_cap!r}")
        if value is None:
            raise ValueError(f"scoring {WHOLE_CAP_KEY} reads windows, and the set has none")
    if value is None:
        return None
    unknown = sorted(set(value) - {"words", "delta"}) if isinstance(value, dict) else []
    if unknown:
        raise ValueError(f"scoring windows {', '.join(map(str, unknown))} is unknown to this "
                         f"Mailmoat")
    words, delta = int(value["words"]), float(value["delta"])
    if not (MIN_WINDOW_WORDS <= words and math.isfinite(delta) and delta >= 0):
        raise ValueError(f"scoring windows must have at least {MIN_WINDOW_WORDS} words and "
                         f"a delta of 0 or more (words {words}, delta {delta})")
    return Windows(words, delta, off_window, urls,      # ValueError: rule 6 without rule 5
                   None if whole_cap is _NO_CAP else float(whole_cap))


def write(directory: Path, *, version: str, revision: int, rules_json: list, bias: float,
          weights: dict[str, float], z90: float, info: dict,
          windows: Windows | None = None, delisted: bool = False,
          chars: Chars | None = None) -> Path:
    """Write a complete set (rules, model, chars.npz with `chars`, manifest last) into
    `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RULES_FILE).write_text(json.dumps(rules_json, indent=1) + "\n")
    scoring = {**({"windows": {"words": windows.words, "delta": windows.delta}}
                  if windows else {}),
               # keys of their own, so a Mailmoat without rules 5 and 6 refuses the set;
               # absent when "whole", so a set read as rev 6 keeps rev 6's bytes
               **({OFF_WINDOW_KEY: windows.off_window}
                  if windows and windows.off_window != SIDES[0] else {}),
               **({URLS_KEY: windows.urls} if windows and windows.urls != SIDES[0] else {}),
               **({WHOLE_CAP_KEY: windows.whole_cap}
                  if windows and windows.whole_cap is not None else {}),
               **({DELISTED_KEY: True} if delisted else {}),
               **({"chars": chars.settings()} if chars else {})}
    model = {"format": 1, "bias": bias, "z90": z90, "info": info,
             **({"scoring": scoring} if scoring else {}),
             "weights": dict(sorted(weights.items()))}
    # mtime=0: the same weights give the same bytes (reproducible training)
    (directory / MODEL_FILE).write_bytes(
        gzip.compress(json.dumps(model, separators=(",", ":")).encode(), 9, mtime=0))
    names = [RULES_FILE, MODEL_FILE]
    if chars:
        (directory / CHARS_FILE).write_bytes(chars.tables.to_bytes())
        names.append(CHARS_FILE)
    elif (directory / CHARS_FILE).exists():
        (directory / CHARS_FILE).unlink()     # a set without chars holds no stale tables
    manifest = {"type": "spam", "version": version, "revision": revision,
                "files": {name: _sha256(directory / name) for name in names}}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    return directory


_cache: dict[str, tuple[float, SpamDefinitions]] = {}


def _cached(directory: Path) -> SpamDefinitions:
    stamp = (directory / MANIFEST_FILE).stat().st_mtime
    key = str(directory)
    hit = _cache.get(key)
    if hit is None or hit[0] != stamp:
        loaded = load(directory)
        # one installed set at a time beside the packaged one: updates do not pile up
        for other in [k for k in _cache if k not in (key, str(PACKAGED_DIR))]:
            del _cache[other]
        _cache[key] = (stamp, loaded)
    return _cache[key][1]


def current(installed: str | Path | None = None) -> SpamDefinitions:
    """The definitions in force (rules 1-2): the set in `installed` when given and valid,
    else the packaged one."""
    if installed and (Path(installed) / MANIFEST_FILE).exists():
        try:
            return _cached(Path(installed))
        except (DefinitionsError, OSError):
            pass          # a broken install never stops scanning: the packaged set stays
    return _cached(PACKAGED_DIR)
