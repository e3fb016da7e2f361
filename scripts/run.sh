#!/usr/bin/env bash
# Run Mailmoat (core + console) from this checkout on non-privileged ports, as a non-root user.
#   - installs into .venv, initialises a data home on first use (SMTP on 2525, console on
#     8003/8043), prints the console address and how to log on, then runs in the foreground
#     until Ctrl-C.
#   - started as root it runs as the system user `mailmoat` (created if missing) with the data
#     home /var/lib/mailmoat; otherwise as you, with the per-user data home.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/bootstrap.sh"
mm="$here/.venv/bin/mailmoat"

as_user=()
if [ "$(id -u)" = 0 ]; then
    if ! id mailmoat >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/mailmoat --shell /usr/sbin/nologin mailmoat
    fi
    export MAILMOAT_HOME=${MAILMOAT_HOME:-/var/lib/mailmoat}
    install -d -o mailmoat -g mailmoat -m 0700 "$MAILMOAT_HOME"
    as_user=(runuser -u mailmoat --)
fi

home_args=()
[ -n "${MAILMOAT_HOME:-}" ] && home_args=(--home "$MAILMOAT_HOME")
first_run=0
if ! "${as_user[@]}" "$mm" config get smtp.port "${home_args[@]}" >/dev/null 2>&1; then
    first_run=1
    "${as_user[@]}" "$mm" init "${home_args[@]}"
    # Non-privileged port for a first try; set 25 later (needs root or CAP_NET_BIND_SERVICE).
    "${as_user[@]}" "$mm" config set smtp.port 2525 "${home_args[@]}" >/dev/null
fi
[ $first_run = 1 ] || echo "Using the existing data home (log on as 'admin' with its password;" \
    "'mailmoat init --reset-admin-password' sets a new one)."
exec "${as_user[@]}" "$mm" run "${home_args[@]}"
