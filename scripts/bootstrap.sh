#!/usr/bin/env bash
# Create .venv beside the checkout and install Mailmoat into it (editable, with test extras
# when asked). Idempotent: a second run only reinstalls when pyproject.toml changed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv="${VENV:-$here/.venv}"
extras=${1:-}
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Mailmoat needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
    exit 1
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
stamp="$venv/.installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e "$here${extras:+[$extras]}"
    touch "$stamp"
fi
# Byte-compile the checkout: where PYTHONDONTWRITEBYTECODE is set (CI's machines, some
# containers) nothing else writes .pyc, and every process the service or the tests start
# (core, console, scanning workers, each CLI command) would compile all of it again.
sources=("$here/core" "$here/shared" "$here/console" "$here/migrations")
[ "$extras" = test ] && sources+=("$here/tests")
# Not fatal: a __pycache__ another user wrote (`sudo make run` on this checkout) only costs
# speed.
"$venv/bin/python" -m compileall -q -j 0 "${sources[@]}" >/dev/null 2>&1 || true
