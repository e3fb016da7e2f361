"""`mailmoat definitions …` (SPEC §2): status, install, build, rollback, keygen.

    mailmoat definitions status [--format text|json]
    mailmoat definitions install FILE [--allow-older]      verified with definitions.trusted_keys
    mailmoat definitions build SRC --key KEY [--type virus|spam] [--version YYYY-MM-DD]
                               [--revision N] [--out FILE]
    mailmoat definitions rollback [--type virus|spam]      back to the previous version (the
                                                           shipped one after the first install)
    mailmoat definitions keygen --out KEY                  a new Ed25519 pair; prints the public key
    mailmoat definitions update                            LiveUpdate (its own issue)

A running core picks up a newly current version by itself (core/scan/service.py) and writes
the definitions_updated event then; install exits 0 once the version is current on disk. A
refused package (bad signature or hash, not newer than the current set, or a set the core's
loader cannot use for its type) exits 1 with the reason on stderr and changes nothing; the
command writes its definitions_updated event itself, result `failed`, since no core sees a
change to report. `status` says what the core scans
with: an installed set that does not load is reported with the reason, beside the shipped
set in force.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from shared.cli import EXIT_BAD_INPUT, EXIT_OK, CommandFailed, register

__all__: list[str] = []


def _setup(parser) -> None:
    parser.add_argument("action", choices=("status", "install", "build", "rollback", "keygen",
                                           "update"))
    parser.add_argument("file", nargs="?", help="install: the package; build: the source "
                                                "directory")
    parser.add_argument("--key", help="build: the Ed25519 private key (PEM or base64)")
    parser.add_argument("--type", dest="kind", choices=("virus", "spam"), default="virus")
    parser.add_argument("--version", dest="def_version", metavar="YYYY-MM-DD",
                        help="build: version date (default today)")
    parser.add_argument("--revision", type=int, default=1, help="build: revision (default 1)")
    parser.add_argument("--out", help="build: package file; keygen: private key file")
    parser.add_argument("--allow-older", action="store_true",
                        help="install: accept a version not newer than the current one")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _run(args) -> int:
    from shared import definitions as defs
    from shared.paths import resolve_home

    if args.action == "build":
        return _build(args, defs)
    if args.action == "keygen":
        if not args.out:
            raise CommandFailed("keygen: --out KEY is required", EXIT_BAD_INPUT)
        pem, public = defs.generate_key()
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        print(f"private key: {args.out}")
        print(f"public key (add to definitions.trusted_keys): {public}")
        return EXIT_OK
    if args.action == "update":
        raise CommandFailed("definitions update: LiveUpdate downloads come with the LiveUpdate "
                            "issue; use `mailmoat definitions install FILE`")
    home = resolve_home(args.home)
    if args.action in ("status", "rollback"):
        # they read and change only definitions/, but of a data home: none at the path is
        # said as every other command says it (a status of the shipped sets was rc 0)
        from shared.home import require_home
        require_home(home)
    if args.action == "status":
        return _status(args, defs, home)
    if args.action == "rollback":
        try:
            now = defs.rollback(home.definitions, args.kind)
        except defs.DefinitionsError as exc:
            raise CommandFailed(f"rollback refused: {exc}") from None
        if now.source == "package":
            print(f"{args.kind} definitions rolled back: the shipped {now.label} is current"
                  + _rollback_again(defs, home, args.kind))
        else:
            print(f"{args.kind} definitions rolled back: {now.label} is current")
        return EXIT_OK
    # install
    if not args.file:
        raise CommandFailed("install: FILE is required", EXIT_BAD_INPUT)
    if not Path(args.file).is_file():
        raise CommandFailed(f"install: {args.file}: no such file", EXIT_BAD_INPUT)
    keys = _trusted_keys(home)
    try:
        now = defs.install_package(args.file, home.definitions, keys,
                                   allow_older=args.allow_older)
    except defs.DefinitionsError as exc:
        _record_refused(home, args.file, exc)
        raise CommandFailed(f"install refused: {exc}") from None
    print(f"{now.type} definitions {now.label} installed and current")
    return EXIT_OK


def _record_refused(home, package: str, exc) -> None:
    """The definitions_updated event of a refused install (guide Table 7-5: "the result of
    the updates (Succeeded/Failed)"): nothing changed, so no core writes one. It names the
    package, why it was refused, who ran the command and, when its signature verified, the
    type and version it carries."""
    from shared.events import FAILED, Action, EventWriter
    from shared.home import invoking_user

    manifest = exc.manifest
    writer = EventWriter(home.db, "cli")
    try:
        writer.record(Action.DEFINITIONS_UPDATED, result=FAILED,
                      rule=f"definitions.{manifest.type}" if manifest else "definitions.install",
                      info=f"install of {Path(package).name} refused: {exc}",
                      data={"package": str(Path(package).resolve()),
                            "user": invoking_user(),
                            **({"type": manifest.type, "version": manifest.version,
                                "revision": manifest.revision} if manifest else {})})
    finally:
        writer.close()


def _rollback_again(defs, home, kind: str) -> str:
    """What a second rollback would do, after one back to the shipped set: the set it
    would make current, or why it would refuse it (tester26b C1: the damaged set the first
    rollback left was promised, and the second refused it)."""
    facts = defs.previous_facts(home.definitions, kind)
    again = facts.get("previous")
    if not again:
        return ""
    if facts.get("previous_problem"):
        return f" (a second rollback would refuse {again}: {facts['previous_problem']})"
    return f" (rollback again makes {again} current)"


def _trusted_keys(home) -> list[str]:
    """definitions.trusted_keys of `home`, which an install writes (the package, or the
    event of its refusal): a home it may not write is said first, in one line."""
    from shared.home import open_db
    from shared.settings_store import load

    conn = open_db(home, writing=True)
    try:
        return list(load(conn)["definitions.trusted_keys"])
    finally:
        conn.close()


def _status(args, defs, home) -> int:
    """What the core scans with (defs.in_force: the installed set when it loads, else the
    shipped one, with the reason), in the words the Status page uses (defs.describe)."""
    out = {}
    for kind in defs.TYPES:
        now, problem = defs.in_force(home.definitions, kind)
        previous = defs.previous_facts(home.definitions, kind)
        out[kind] = {**(now.as_status() if now else {"version": None, "revision": None,
                                                      "source": None}),
                     "previous": previous.get("previous"),
                     "previous_problem": previous.get("previous_problem"),
                     "problem": problem or None}
    if args.format == "json":
        print(json.dumps(out, sort_keys=True))
        return EXIT_OK
    for kind, facts in out.items():
        print(f"{kind}: {defs.describe(facts)}")
    return EXIT_OK


def _build(args, defs) -> int:
    if not args.file:
        raise CommandFailed("build: SRC directory is required", EXIT_BAD_INPUT)
    if not args.key:
        raise CommandFailed("build: --key KEY is required", EXIT_BAD_INPUT)
    if args.revision < 0:
        raise CommandFailed("--revision: must be 0 or more", EXIT_BAD_INPUT)
    try:
        key = defs.load_private_key(args.key)
        version = args.def_version
        out = args.out or f"{args.kind}-{version or 'today'}-r{args.revision}{defs.PACKAGE_SUFFIX}"
        manifest = defs.build_package(args.file, key, out, kind=args.kind, version=version,
                                      revision=args.revision)
    except OSError as exc:          # a key or source file named wrong: as `config import` says it
        where = f"{exc.filename}: " if exc.filename else ""
        raise CommandFailed(f"build: {where}{exc.strerror or exc}", EXIT_BAD_INPUT) from None
    except defs.DefinitionsError as exc:
        raise CommandFailed(f"build: {exc}", EXIT_BAD_INPUT) from None
    if not args.out:
        final = f"{args.kind}-{manifest.version}-r{manifest.revision}{defs.PACKAGE_SUFFIX}"
        os.replace(out, final)
        out = final
    print(f"{out}: {manifest.type} {manifest.label}, {len(manifest.files)} file(s), signed "
          f"by {defs.public_key_b64(key)}")
    return EXIT_OK


register("definitions", "virus and spam definitions: status, install, build", _setup, _run)
