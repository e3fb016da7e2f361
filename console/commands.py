"""`mailmoat console`: registers the command with the CLI (shared.cli imports this module).

Kept light: the web stack is imported only when the command runs.
"""

from __future__ import annotations

from shared.cli import CommandFailed, register

__all__ = []


def _setup(_parser) -> None:
    """`--home` is added by the CLI; the ports come from the settings."""


def _run(args) -> int:
    import sys

    from console.serve import run
    from shared.home import AlreadyRunning
    from shared.paths import resolve_home

    home = resolve_home(args.home)
    if not home.exists():
        raise CommandFailed(f"no Mailmoat data home at {home.root}; run `mailmoat init` first")
    try:
        status = run(home, out=lambda line: print(line, flush=True))
    except AlreadyRunning as exc:
        raise CommandFailed(str(exc)) from None
    sys.stdout.flush()
    return status


register("console", "start the web console (HTTP and HTTPS)", _setup, _run)
