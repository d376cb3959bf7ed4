# Shared helpers for the bench/ scripts (sourced, not run).
# Everything listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/library-api-target}"
WORK=$(mktemp -d)
PIDS=()
# Commands run on exit after the processes are stopped (e.g. dropping a temporary database).
CLEANUP_HOOKS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pidfile in "$WORK"/nginx*.pid; do [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for hook in "${CLEANUP_HOOKS[@]}"; do eval "$hook" || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench: $1 is missing (apt-get install -y $2)" >&2; exit 1; }; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_nginx_return_200 PORT [SITE_FILE]: the reference point, an nginx that answers 200 with
# no work on PORT; SITE_FILE (a server/upstream snippet) is included beside it.
start_nginx_return_200() { start_nginx nginx auto "$1" "${2:-}"; }

# start_nginx NAME WORKERS PORT [SITE_FILE]: an nginx (pid file $WORK/NAME.pid, config and logs
# under $WORK/NAME/) with WORKERS worker processes ("auto": one per core) answering 200 "ok" with
# no work on PORT, SITE_FILE included beside it. With NGINX_CPU set, nginx and its workers run
# on that CPU only (taskset).
start_nginx() {
    need nginx nginx
    local name=$1 workers=$2 port=$3 site=${4:-}
    local dir="$WORK/$name"
    mkdir -p "$dir"
    local include=""
    [ -n "$site" ] && include="include $site;"
    cat > "$dir/nginx.conf" <<CONF
worker_processes $workers;
pid $WORK/$name.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir;
    uwsgi_temp_path $dir; scgi_temp_path $dir;
    server { listen 127.0.0.1:$port; location / { return 200 "ok"; } }
    $include
}
CONF
    local pin=()
    [ -n "${NGINX_CPU:-}" ] && pin=(taskset -c "$NGINX_CPU")
    "${pin[@]}" nginx -c "$dir/nginx.conf" -p "$dir"
    wait_for "http://127.0.0.1:$port/"
}

# stop_nginx NAME: stops the nginx start_nginx NAME started.
stop_nginx() {
    local pidfile="$WORK/$1.pid" pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"
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
# or $WORK/service.log for "library"); its pid is the last of PIDS. With SERVICE_CPU set, it and
# all its threads run on that CPU only (taskset).
start_instance() {
    local name=$1 port=$2; shift 2
    local log="$WORK/$name.log"
    [ "$name" = library ] && log="$WORK/service.log"
    local pin=()
    [ -n "${SERVICE_CPU:-}" ] && pin=(taskset -c "$SERVICE_CPU")
    "${pin[@]}" env DATABASE_URL="$WORK/$name.db" BIND_ADDR="127.0.0.1:$port" RUST_LOG=warn "$@" \
        "${SERVICE_BIN:-$CARGO_TARGET_DIR/release/library-api}" >"$log" 2>&1 &
    PIDS+=($!)
    wait_for "http://127.0.0.1:$port/healthz"
}

# peak_rss_mib PID: the process's peak resident memory (VmHWM).
peak_rss_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

wait_for() {
    for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "bench: $1 did not come up" >&2; exit 1
}

# wrk_row NAME URL [wrk args…]: one table row "NAME req/s p50 p99" (2 threads, 64 connections;
# WRK_THREADS, WRK_CONNECTIONS and WRK_SECONDS override; with WRK_CPU set, wrk runs on that CPU
# only). A row that saw a response other than 2xx/3xx, a socket error or a timeout, or whose wrk
# script printed "failures N" with N > 0, is also named, with what went wrong, in
# $ROW_ERRORS (see row_errors).
ROW_ERRORS="$WORK/row-errors"
ROW_WIDTH=${ROW_WIDTH:-28}
wrk_row() {
    need wrk wrk
    local name=$1 url=$2; shift 2
    local out pin=()
    [ -n "${WRK_CPU:-}" ] && pin=(taskset -c "$WRK_CPU")
    # The URL before the options: arguments after `--` go to the wrk script.
    out=$("${pin[@]}" wrk -t"${WRK_THREADS:-2}" -c"${WRK_CONNECTIONS:-64}" -d"${WRK_SECONDS:-${BENCH_SECONDS:-10}}"s \
        --latency "$url" "$@" 2>&1) || { echo "$name: wrk failed: $(tail -n 1 <<<"$out")" >> "$ROW_ERRORS"; }
    local rps p50 p99 problems=()
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    local non2xx socket failures
    non2xx=$(awk -F: '/Non-2xx or 3xx responses/ {gsub(/ /, "", $2); print $2}' <<<"$out")
    socket=$(sed -n 's/^ *Socket errors: *//p' <<<"$out")
    failures=$(awk '$1 == "failures" {print $2}' <<<"$out")
    [ -n "$non2xx" ] && [ "$non2xx" != 0 ] && problems+=("$non2xx responses not 2xx/3xx")
    [ -n "$socket" ] && problems+=("socket errors: $socket")
    [ -n "$failures" ] && [ "$failures" != 0 ] && problems+=("$(awk '$1 == "failures"' <<<"$out" | head -n 1)")
    [ -z "$rps" ] && problems+=("no result from wrk")
    if [ ${#problems[@]} -gt 0 ]; then
        local joined
        joined=$(printf '%s; ' "${problems[@]}")
        echo "$name: ${joined%; }" >> "$ROW_ERRORS"
    fi
    printf "%-${ROW_WIDTH}s %12s %10s %10s\n" "$name" "${rps:-0}" "${p50:--}" "${p99:--}"
}

# row_errors: prints what wrk_row recorded (nothing when every row was clean).
row_errors() { [ -f "$ROW_ERRORS" ] && cat "$ROW_ERRORS" || true; }

# ratio A B: A / B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
