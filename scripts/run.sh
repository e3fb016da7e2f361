#!/usr/bin/env bash
# Run Mailmoat (core + console) from this checkout on non-privileged ports, as a non-root user.
#   - installs into a virtual environment, initialises a data home on first use (SMTP on
#     2525, console on 8003/8043), prints the full path of the `mailmoat` command for that
#     home (nothing puts it on PATH), the console address and how to log on, then runs in
#     the foreground until Ctrl-C.
#   - started as root it runs as the system user `mailmoat` (created if missing) with the data
#     home /var/lib/mailmoat, from a virtual environment (.venv-service) whose interpreter that
#     user can execute; otherwise as you, from .venv, with the per-user data home.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

as_user=()
if [ "$(id -u)" = 0 ]; then
    if ! id mailmoat >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/mailmoat --shell /usr/sbin/nologin mailmoat
    fi
    export MAILMOAT_HOME=${MAILMOAT_HOME:-/var/lib/mailmoat}
    install -d -o mailmoat -g mailmoat -m 0700 "$MAILMOAT_HOME"
    as_user=(runuser -u mailmoat --)
    # root's own Python may live where `mailmoat` cannot reach (e.g. pyenv under /root).
    python=""
    for candidate in "${PYTHON:-}" python3 /usr/bin/python3; do
        [ -n "$candidate" ] || continue
        path=$(command -v "$candidate" 2>/dev/null) || continue
        path=$(readlink -f "$path")
        if runuser -u mailmoat -- "$path" -c \
                'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            python=$path
            break
        fi
    done
    if [ -z "$python" ]; then
        echo "No Python >= 3.11 with venv that the mailmoat user can run (Debian: apt-get" \
             "install python3 python3-venv)" >&2
        exit 1
    fi
    if ! runuser -u mailmoat -- test -r "$here/pyproject.toml"; then
        echo "The mailmoat user cannot read $here; put the checkout somewhere it can" >&2
        exit 1
    fi
    export PYTHON=$python VENV="$here/.venv-service"
else
    export VENV="$here/.venv"
fi
"$here/scripts/bootstrap.sh"
mm="$VENV/bin/mailmoat"

home_args=()
[ -n "${MAILMOAT_HOME:-}" ] && home_args=(--home "$MAILMOAT_HOME")
# `init` is idempotent: it creates the data home on first use and applies the migrations of an
# upgraded checkout otherwise. Only a home it has just created gets the first-try port:
# deciding by a failing `config get` set 2525 on a home that merely needed a migration.
init_output=$("${as_user[@]}" "$mm" init "${home_args[@]}")
echo "$init_output"
if grep -q '(created)$' <<<"$(head -n 1 <<<"$init_output")"; then
    # Non-privileged port for a first try; set 25 later (needs root or CAP_NET_BIND_SERVICE).
    "${as_user[@]}" "$mm" config set smtp.port 2525 "${home_args[@]}" >/dev/null
else
    # An administrator's settings are never changed behind their back: smtp.port too, 25 on a
    # home `mailmoat init` made (the README says so; `mailmoat run` says when the core may
    # not listen there).
    echo "Using the existing data home and its settings (this script sets SMTP port 2525" \
         "only on a home it creates)."
fi
# the unpacking tools rarfile can use (core/pipeline/decompose/archives.py rule 3)
command -v unar unrar bsdtar 7z 7zz >/dev/null 2>&1 || echo "Note: no RAR unpacking tool is" \
    "installed (Debian: apt-get install unar): messages with RAR attachments will be held" \
    "as unprocessable." >&2
# The command to type for this home: the README's `mailmoat …` with its full path, and
# --home when the home is not the one the command finds by itself. Run as root, it works as
# the user that owns the data home (shared/cli.py), as `run` below does through runuser.
if [ "$(id -u)" = 0 ]; then
    default_home=/var/lib/mailmoat
else
    default_home=${XDG_DATA_HOME:-$HOME/.local/share}/mailmoat
fi
home_hint=""
if [ -n "${MAILMOAT_HOME:-}" ] && \
        [ "$(realpath -m "$MAILMOAT_HOME")" != "$(realpath -m "$default_home")" ]; then
    home_hint=" --home $(realpath -m "$MAILMOAT_HOME")"
fi
echo "Command line (not on PATH): $mm COMMAND …$home_hint, e.g." \
     "$mm config get smtp.port$home_hint"
exec "${as_user[@]}" "$mm" run "${home_args[@]}"
