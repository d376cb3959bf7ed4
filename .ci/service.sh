# shellcheck shell=bash
# Shared by the CI scripts that talk to the running service (.ci/schemathesis, .ci/openapi);
# sourced, not run. Provides:
#   venv, venv_install SPEC...  a virtual environment for PyPI tools (works where the system
#                               Python refuses pip installs, PEP 668), with pinned packages
#   start_service NAME          builds the debug binary and starts it on a free loopback port with
#                               a fresh SQLite database and an admin account; waits for /healthz.
#                               Sets $base (http://127.0.0.1:PORT) and $work (a temporary
#                               directory for the caller's files too). On exit the service is
#                               stopped and $work removed (this file owns the EXIT trap).
#   admin_token                 prints an access token of the admin account
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/library-api-target}"

venv="$HOME/.cache/library-api-venv"
service_admin=fuzz-admin
service_password='fuzz admin password'
service_pid=""
work=""
base=""

venv_install() {
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}

stop_service() {
    if [ -n "$service_pid" ]; then
        kill "$service_pid" 2>/dev/null || true
        wait "$service_pid" 2>/dev/null || true
    fi
    if [ -n "$work" ]; then rm -rf "$work"; fi
}

start_service() {
    local name=$1 port up=""
    cargo build --quiet
    work=$(mktemp -d)
    trap stop_service EXIT
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    base="http://127.0.0.1:$port"
    DATABASE_URL="$work/library.db" BIND_ADDR="127.0.0.1:$port" BCRYPT_COST=4 RUST_LOG=warn \
        ADMIN_NAME="$service_admin" ADMIN_PASSWORD="$service_password" \
        "$CARGO_TARGET_DIR/debug/library-api" >"$work/service.log" 2>&1 &
    service_pid=$!
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "$base/healthz" 2>/dev/null; then up=1; break; fi
        sleep 0.1
    done
    if [ -z "$up" ]; then
        echo "$name: the service did not start:" >&2
        cat "$work/service.log" >&2
        exit 1
    fi
}

admin_token() {
    curl -fsS -u "$service_admin:$service_password" -X POST "$base/login" \
        | sed 's/.*"access_token":"\([^"]*\)".*/\1/'
}
