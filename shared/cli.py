"""`mailmoat …` commands (SPEC §2): parse, call a service, print. Nothing else lives here.

Run as root on a data home that another user owns (the service user), the `mailmoat` program
(`entry`: the console script and `python -m shared.cli`) becomes that user (shared.home.
become_owner) before the command touches the home, so what it writes is the service's; it
says nothing about it unless it cannot (exit 1). Commands that never open the home
(HOME_FREE_DEFINITIONS) run as their caller. `main`, called inside another program (a test, a
script), runs the command as that program's user: the change of user is for good, and only a
process that is nothing but the command may make it.

Exit status: 0 success, 2 bad input (one line per problem on stderr, `KEY: rule`), 1 any
other failure. No traceback reaches the terminal for an expected failure: CommandFailed, a
setting's rule, a schema mismatch, a data home that is missing, unreadable, read-only or a
file (`mailmoat: cannot use PATH (reason)`; a command that writes the database asks before
it writes: shared.home `open_db(writing=True)`), standard output that cannot be written
(`mailmoat: cannot write the output (reason)`). A reader that stops early (`| head`) ends
the command quietly with 0, as `report` does. Anything else is a bug and prints its
traceback.
"""

from __future__ import annotations

import argparse
import errno
import itertools
import json
import os
import sys
import traceback
from typing import Callable, Sequence

from shared import db
from shared.paths import resolve_home
from shared.settings import SCHEMA, SettingError, display_value, parse_cli_value, read_json

__all__ = ["main", "entry", "build_parser", "register", "CommandFailed", "sole_exception",
           "record_change"]

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
# `definitions` actions that never open the data home: a signing key or a package an
# administrator makes is theirs, wherever the service's home is. Not `update`: LiveUpdate
# installs into the home, which root's files there would break.
HOME_FREE_DEFINITIONS = frozenset({"build", "keygen"})
# An operator's failure, not a bug, when the system refuses a file of the data home (or a
# file stands where the home, or one of its directories, should be).
_FILE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR})


class CommandFailed(Exception):
    """An expected failure: message for stderr, exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILURE):
        super().__init__(message)
        self.status = status


def sole_exception(exc: BaseException) -> BaseException:
    """The one exception inside nested groups of one (what trio's nurseries wrap a failure
    in); `exc` itself when it is no group or holds several."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


# --- commands --------------------------------------------------------------------------------

def record_change(home, changed: dict[str, tuple], command_line: str, *,
                  result: str = "saved", **extra) -> None:
    """An object_modified event for a change made from the command line, as the console
    writes one for a change saved there (the audit trail; it raises the config_change
    alert): who (the system user who ran the command, shared.home.invoking_user), the
    command, what changed. A request left for the core
    (`mailmoat queue ACTION --hold`) changes no setting: `extra` names it (command, args,
    command_id), as the console's hold buttons do (console.settings_service.submit_command);
    one the command withdraws again is recorded with `result` shared.commands.WITHDRAWN.
    Nothing changed and nothing requested writes nothing."""
    if not changed and not extra:
        return
    from shared.events import Action, EventWriter
    from shared.home import invoking_user
    from shared.settings import changes_shown

    writer = EventWriter(home.db, "cli")
    try:
        writer.record(Action.OBJECT_MODIFIED, result=result, info=f"mailmoat {command_line}",
                      rule=",".join(sorted(changed))[:500] or None,
                      data={"user": invoking_user(), "page": "cli",
                            "changes": changes_shown(changed), **extra})
    finally:
        writer.close()


def cmd_init(args) -> int:
    from shared.home import initialise

    home = resolve_home(args.home)
    result = initialise(home, args.admin_password, args.reset_admin_password)
    if result.password_set and not result.created:
        record_change(home, {"admin.password": ("old", "new")}, "init --reset-admin-password")
    print(f"Data home: {home.root} ({'created' if result.created else 'already initialised'})")
    if result.migrations_applied:
        print(f"Database schema: {result.migrations_applied} migration(s) applied")
    if result.generated_password:
        print(f"Administrator password (shown once, log on as 'admin'): "
              f"{result.generated_password}")
    elif result.password_set:
        print("Administrator password set.")
    else:
        print("Administrator password unchanged (use --reset-admin-password to replace it).")
    if result.certificate_created:
        print(f"Self-signed TLS certificate: {home.tls_cert}")
    if result.tls_problem:
        # The rest of the home is ready (and a generated password printed); status 1 stops a
        # restore script before it starts a gateway without its certificate.
        raise CommandFailed(result.tls_problem)
    return EXIT_OK


def cmd_migrate(args) -> int:
    home = resolve_home(args.home)
    if not home.exists():
        raise CommandFailed(f"no Mailmoat data home at {home.root}; run `mailmoat init` first")
    from shared.home import migrate_stopped
    conn = db.connect(home.db)
    try:
        applied = migrate_stopped(home, conn)
        version = db.schema_version(conn)
    finally:
        conn.close()
    if applied:
        for migration in applied:
            print(f"applied {migration.version:04d}_{migration.name}")
    else:
        print(f"schema already at version {version}")
    return EXIT_OK


def cmd_config(args) -> int:
    from shared.home import open_db
    from shared.settings_store import (apply_changes, check_on_this_host, export_settings,
                                       import_settings, load)

    home = resolve_home(args.home)
    conn = open_db(home, writing=args.config_command in ("set", "import"))
    try:
        if args.config_command == "get":
            values = load(conn)
            if args.key is None:
                print(json.dumps({k: display_value(k, v) for k, v in sorted(values.items())},
                                 indent=2, ensure_ascii=False))
            else:
                if args.key not in SCHEMA:
                    raise SettingError([(args.key, "unknown setting")])
                print(json.dumps(display_value(args.key, values[args.key]), ensure_ascii=False))
        elif args.config_command == "set":
            text = args.value
            if text is None:        # a list past what one argument may hold (128 KiB)
                if sys.stdin.isatty():
                    raise SettingError([(args.key, "give a value, or pipe it to standard "
                                                   "input")])
                text = sys.stdin.read().removesuffix("\n").removesuffix("\r")
            value = parse_cli_value(args.key, text)
            # SPEC §3, as the console does
            check_on_this_host(load(conn), {args.key: value}, conn=conn)
            changed = apply_changes(conn, {args.key: value})
            record_change(home, changed, "config set")
            if changed:
                print(f"{args.key} set" + (f" ({AT_RESTART})" if _at_restart(changed) else ""))
            else:
                print(f"{args.key} unchanged")
        elif args.config_command == "export":
            exported = export_settings(conn)
            print(json.dumps(exported, indent=2, ensure_ascii=False))
            _warn_refused(exported)
        elif args.config_command == "import":
            try:
                with open(args.file, encoding="utf-8") as handle:
                    data = read_json(handle.read())
            except OSError as exc:
                raise CommandFailed(f"{args.file}: {exc.strerror}", EXIT_BAD_INPUT) from None
            except RecursionError:
                raise CommandFailed(f"{args.file}: not valid JSON for settings: nested too "
                                    "deeply ([ ] and { } within each other)",
                                    EXIT_BAD_INPUT) from None
            except json.JSONDecodeError as exc:
                # some of json's texts end in "at" already: "Unterminated string starting at"
                where = f"at line {exc.lineno}, column {exc.colno}"
                raise CommandFailed(f"{args.file}: not valid JSON: "
                                    f"{exc.msg.removesuffix(' at')} {where}",
                                    EXIT_BAD_INPUT) from None
            if isinstance(data, dict):
                check_on_this_host(load(conn), data, conn=conn)
            changed = import_settings(conn, data)
            record_change(home, changed, "config import")
            later = _at_restart(changed)
            print(f"imported {len(data)} settings ({len(changed)} changed)"
                  + (f"; {', '.join(later)}: {AT_RESTART}" if later else ""))
    finally:
        conn.close()
    return EXIT_OK


# What `config set` and `config import` say of a changed key that takes effect only when
# Mailmoat restarts (the schema's `restart`), in the words the console shows beside it.
AT_RESTART = "takes effect when Mailmoat restarts"


def _at_restart(changed) -> list[str]:
    """The keys of `changed` that take effect only when Mailmoat restarts."""
    return sorted(key for key in changed if SCHEMA[key].restart)


def _warn_refused(exported: dict) -> None:
    """Stored values this release's rules refuse (an older release stored them) go into the
    export as stored, and its `config import` refuses them, here as on any other home,
    as a save of their console page does (docs/operations.md, Upgrading). Said now, on
    stderr, while the home is there to correct them, not at a restore (upgrade17 B5): the
    list the Status page shows (shared.settings_store `refused_on_this_host`)."""
    from shared.settings_store import refused_on_this_host

    refused = refused_on_this_host(exported)
    if not refused:
        return
    print("mailmoat: warning: the export holds stored values this release's rules refuse; "
          "`config import` of it refuses them until they are corrected (here with "
          "`config set`, or in the file):", file=sys.stderr)
    for key, rule in refused:
        print(f"{key}: {rule}", file=sys.stderr)


# Commands of the areas, registered when their modules are imported (name → (help, setup, run)).
_REGISTRY: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def register(name: str, help: str, setup: Callable[[argparse.ArgumentParser], None],
             run: Callable) -> None:
    _REGISTRY[name] = (help, setup, run)


def _home_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", help="data home (default: $MAILMOAT_HOME, else a per-user "
                                       "directory; /var/lib/mailmoat for root)")


def _load_commands() -> None:
    """Import the modules that register the areas' commands (each registers on import)."""
    import importlib

    for module in ("core.commands", "core.queue_commands", "console.commands",
                   "shared.report_commands", "shared.definitions_commands"):
        importlib.import_module(module)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailmoat", description="Mailmoat email-security "
                                     "gateway")
    # required, but said by _parse after what it cannot read: argparse checks required
    # arguments first, so `mailmoat --bogus` was "the following arguments are required"
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("init", help="create or complete a data home")
    _home_option(p)
    p.add_argument("--admin-password", help="administrator password (≤32 characters); "
                                            "generated and printed once when omitted")
    p.add_argument("--reset-admin-password", action="store_true",
                   help="replace an existing administrator password")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("migrate", help="apply database migrations")
    _home_option(p)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("config", help="read and change settings")
    config = p.add_subparsers(dest="config_command")
    g = config.add_parser("get", help="print settings as JSON")
    g.add_argument("key", nargs="?")
    _home_option(g)
    s = config.add_parser("set", help="change one setting")
    s.add_argument("key")
    s.add_argument("value", nargs="?",
                   help="JSON or plain text; read from standard input when left out (one "
                        "spelled like an option, --home, goes after --: config set KEY -- "
                        "--home)")
    _home_option(s)
    e = config.add_parser("export", help="print every setting (a full backup)")
    _home_option(e)
    i = config.add_parser("import", help="validated restore of an export")
    i.add_argument("file")
    _home_option(i)
    p.set_defaults(func=cmd_config)

    _load_commands()
    for name, (help, setup, run) in _REGISTRY.items():
        p = sub.add_parser(name, help=help)
        _home_option(p)
        setup(p)
        p.set_defaults(func=run)
    return parser


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, a command's positional arguments taken after its options too:
    argparse gives a command's positionals their values at the first of them, so `queue
    forward --hold --id ID ADDRESS` left ADDRESS "unrecognized" (upgrade17 C6); an area's
    command (whose parser has no subcommands) is then parsed again with options and
    positionals intermixed. What is wrong is said by the parser of the (sub)command it is
    wrong for, with that command's usage: argparse's top-level parser says it of a
    subcommand's argument, with `usage: mailmoat [-h] {init,…}` (clispec19 C1)."""
    argv = _set_value_as_given(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command in _REGISTRY and argv and argv[0] == args.command:
        return _subcommands(parser).choices[args.command].parse_intermixed_args(
            argv[1:], argparse.Namespace(command=args.command))
    chosen = parser
    while (choices := _subcommands(chosen)) is not None and \
            getattr(args, choices.dest) is not None:
        chosen = choices.choices[getattr(args, choices.dest)]
    if extra:
        chosen.error(f"unrecognized arguments: {' '.join(extra)}")
    if choices is not None:
        chosen.error(f"the following arguments are required: {choices.dest}")
    return args


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((action for action in parser._actions
                 if isinstance(action, argparse._SubParsersAction)), None)


def _run_as_home_owner(args) -> None:
    """Become the data home's owner when run as root on another user's home (module
    docstring); the command then names the home it resolved, since a default resolved
    again as that user would be another one."""
    if args.command == "definitions" and args.action in HOME_FREE_DEFINITIONS:
        return
    from shared.home import become_owner

    home = resolve_home(args.home)
    if become_owner(home):
        args.home = str(home.root)


# The options of `config set`, which argparse also reads abbreviated (--ho, --he; --h is both).
_SET_OPTIONS = ("--home", "--help")


def _set_option(arg: str) -> str | None:
    """The option of `config set` that `arg` names ("--home", "--help"), None for a KEY or a
    VALUE: only an option's own spelling counts, so `-- SPAM --` or `--x` is a value."""
    if arg == "-h":
        return "--help"
    name = arg.partition("=")[0]
    if len(name) < len("--h"):
        return None
    return next((option for option in _SET_OPTIONS if option.startswith(name)), None)


def _set_value_as_given(argv: Sequence[str]) -> list[str]:
    """`argv`, with the options of `config set` first and then `--` before KEY and VALUE.
    argparse takes every argument starting with - for an option, so `config set
    heuristic.subject_prefix -SPAM-` was "unrecognized arguments" (settings findings 16,
    section 7); after `--` it is the value. Only --home and --help (and their abbreviations)
    are options; a VALUE spelled like one goes after a `--` typed by hand."""
    argv = list(argv)
    if argv[:2] != ["config", "set"]:
        return argv
    options: list[str] = []
    given: list[str] = []
    rest = iter(argv[2:])
    for arg in rest:
        option = _set_option(arg)
        if arg == "--":
            given.extend(rest)
        elif option == "--home" and "=" not in arg and arg != "--h":
            options.extend([arg, *itertools.islice(rest, 1)])    # its value, if given
        elif option is not None:
            options.append(arg)
        else:
            given.append(arg)
    return ["config", "set", *options, "--", *given]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command in this process, as the user it runs as (module docstring)."""
    argv = sys.argv[1:] if argv is None else argv
    return _run(_parse(argv))


def entry() -> None:
    """The `mailmoat` program: the command, as the data home's owner when run as root on
    another user's home (module docstring)."""
    sys.exit(_run(_parse(sys.argv[1:]), as_home_owner=True))


class OutputFailed(Exception):
    """Writing the command's standard output failed (the OSError is its cause)."""


class _Output:
    """Standard output while a command runs: a write or flush that fails raises
    OutputFailed, so that the boundary tells it from a failure of the data home (`config
    get > /dev/full` was "no space left on the data home's disk": clispec19 C5). A reader
    gone (BrokenPipeError) passes as it is."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputFailed() from exc

    def flush(self):
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputFailed() from exc

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _run(args, as_home_owner: bool = False) -> int:
    stdout = sys.stdout
    sys.stdout = _Output(stdout)
    try:
        return _run_command(args, as_home_owner)
    finally:
        sys.stdout = stdout


def _output_gone() -> None:
    """Point stdout at /dev/null so the flush at interpreter exit does not fail again (the
    Python docs' recipe for SIGPIPE)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _run_command(args, as_home_owner: bool) -> int:
    try:
        if as_home_owner:
            _run_as_home_owner(args)
        status = args.func(args)
        sys.stdout.flush()      # a closed pipe shows here, not at interpreter exit
        return status
    except SettingError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    except CommandFailed as exc:
        print(f"mailmoat: {exc}", file=sys.stderr)
        return exc.status
    except (db.SchemaTooNew, db.SchemaTooOld) as exc:
        print(f"mailmoat: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:  # the boundary: a known failure is one line
        from shared.home import AlreadyRunning, HomeMissing, OwnerUnusable
        from shared.known_failures import LOCKED, known_failure
        failure = sole_exception(exc)
        if isinstance(failure, BrokenPipeError):
            _output_gone()      # `| head`: the reader has seen enough
            return EXIT_OK
        if isinstance(failure, OutputFailed):
            cause = failure.__cause__
            _output_gone()
            print(f"mailmoat: cannot write the output ({cause.strerror or cause})",
                  file=sys.stderr)
            return EXIT_FAILURE
        if isinstance(failure, (HomeMissing, OwnerUnusable, CommandFailed, AlreadyRunning,
                                db.DatabaseUnavailable)):
            print(f"mailmoat: {failure}", file=sys.stderr)
            return getattr(failure, "status", EXIT_FAILURE)
        if isinstance(failure, OSError) and failure.errno in _FILE_ERRNOS and failure.filename:
            print(f"mailmoat: cannot use {failure.filename} ({failure.strerror})",
                  file=sys.stderr)
            return EXIT_FAILURE
        known = known_failure(failure, resolve_home(getattr(args, "home", None)).root)
        if known is not None and known.kind == LOCKED:
            print(f"mailmoat: {known.reason}; nothing was changed: try again when it is done",
                  file=sys.stderr)
            return EXIT_FAILURE
        if known is not None:
            print(f"mailmoat: {known.reason} ({failure})", file=sys.stderr)
            return EXIT_FAILURE
        # A bug: the operator (a terminal, or `mailmoat run`'s log) needs where it happened,
        # or a crashed core cannot be diagnosed. Nothing here reaches a client or a page.
        print(f"mailmoat: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        traceback.print_exception(exc, file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy: areas register their commands into
    # `shared.cli`'s registry when they import it.
    from shared import cli as _cli
    _cli.entry()
