# Shared helpers for the bench/ scripts (sourced, not run).
# Everything listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/library-api-target}"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench: $1 is missing (apt-get install -y $2)" >&2; exit 1; }; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_nginx_return_200 PORT [SITE_FILE]: the reference point, an nginx that answers 200 with
# no work on PORT; SITE_FILE (a server/upstream snippet) is included beside it.
start_nginx_return_200() {
    need nginx nginx
    local port=$1 site=${2:-}
    mkdir -p "$WORK/nginx"
    local include=""
    [ -n "$site" ] && include="include $site;"
    cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
    server { listen 127.0.0.1:$port; location / { return 200 "ok"; } }
    $include
}
CONF
    nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
    wait_for "http://127.0.0.1:$port/"
}

# token_for PORT NAME: registers NAME and prints an access token for it.
token_for() {
    local port=$1 name=$2
    curl -fsS -o /dev/null -H 'content-type: application/json' \
        -d "{\"name\":\"$name\",\"password\":\"bench password\"}" "http://127.0.0.1:$port/register"
    curl -fsS -u "$name:bench password" -X POST "http://127.0.0.1:$port/login" | sed 's/.*"access_token":"\([^"]*\)".*/\1/'
}

# start_service PORT [ENV=VALUE…]: the release binary on a fresh SQLite database.
start_service() {
    local port=$1; shift
    start_instance library "$port" "$@"
}

# start_instance NAME PORT [ENV=VALUE…]: the release binary on $WORK/NAME.db (log $WORK/NAME.log,
# or $WORK/service.log for "library"); its pid is the last of PIDS.
start_instance() {
    local name=$1 port=$2; shift 2
    local log="$WORK/$name.log"
    [ "$name" = library ] && log="$WORK/service.log"
    env DATABASE_URL="$WORK/$name.db" BIND_ADDR="127.0.0.1:$port" RUST_LOG=warn "$@" \
        "$CARGO_TARGET_DIR/release/library-api" >"$log" 2>&1 &
    PIDS+=($!)
    wait_for "http://127.0.0.1:$port/healthz"
}

# peak_rss_mib PID: the process's peak resident memory (VmHWM).
peak_rss_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

wait_for() {
    for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "bench: $1 did not come up" >&2; exit 1
}

# wrk_row NAME URL [wrk args…]: one table row "NAME req/s p50 p99" (2 threads, 64 connections).
wrk_row() {
    need wrk wrk
    local name=$1 url=$2; shift 2
    local out
    # The URL before the options: arguments after `--` go to the wrk script.
    out=$(wrk -t2 -c64 -d"${BENCH_SECONDS:-10}"s --latency "$url" "$@")
    local rps p50 p99
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    printf '%-28s %12s %10s %10s\n' "$name" "$rps" "$p50" "$p99"
}

# ratio A B: A / B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
