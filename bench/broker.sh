#!/usr/bin/env bash
# The Redis broker's numbers (docs/benchmarks.md, "Scale-out broker"):
#   1. one server, no broker        3,000 subscribers, one publisher
#   2. one server with a broker     the same: what the broker adds to a
#                                   publish (envelope, queue, PUBLISH)
#   3. three servers, one broker    1,000 subscribers on each, the
#                                   publisher on the first
#   4. one subscriber, one broadcast in flight: without a broker, with one
#      (subscriber on the publisher's server), and across servers (the
#      subscriber on another server than the publisher): the round trip
# Needs a build with -DWSN_BUILD_BENCH=ON (wsn-loadgen, wsn-chat-bench) and
# redis-server. Not run by CI; every process it starts is ended by PID.
#   bash bench/broker.sh [BUILD_DIR]   (default build-bench)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build-bench}"
lg="$build/bench/wsn-loadgen"
srv="$build/bench/wsn-chat-bench"
dur="${WSN_BENCH_DURATION:-5}"
work="$(mktemp -d /tmp/wsn-broker-bench.XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

. "$root/bench/lib.sh"
wait_healthy() {
    for _ in $(seq 1 500); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/healthz")" = 200 ] && return 0
        sleep 0.01
    done
    echo "server on $1 never healthy" >&2
    exit 1
}
start_server() { # PORT [BROKER]
    if [ -n "${2:-}" ]; then
        "$srv" --port "$1" --broker "$2" 2>>"$work/servers.log" &
    else
        "$srv" --port "$1" 2>>"$work/servers.log" &
    fi
    pids+=($!)
    wait_port "$1"
    [ -z "${2:-}" ] || wait_healthy "$1"
}
stop_servers() {
    for p in "${pids[@]:1}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    pids=("${pids[0]}")
}
run() { # LABEL LOADGEN-ARGS...
    local label="$1"
    shift
    echo "== $label: wsn-loadgen $*" >&2
    "$lg" --mode fanout --duration "$dur" --label "$label" "$@" | tee -a "$work/results.jsonl"
}

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    --logfile redis.log &
pids+=($!)
wait_port "$rport"
url="redis://127.0.0.1:$rport"

p1=$(free_port); p2=$(free_port); p3=$(free_port)
start_server "$p1"
run "1 server, no broker, 3000 subs" --port "$p1" --subs 3000 --phase 64:20
run "1 server, no broker, 1 sub, W=1" --port "$p1" --subs 1 --phase 64:1
stop_servers

start_server "$p1" "$url"
run "1 server, broker, 3000 subs" --port "$p1" --subs 3000 --phase 64:20
run "1 server, broker, 1 sub, W=1" --port "$p1" --subs 1 --phase 64:1
stop_servers

start_server "$p1" "$url"; start_server "$p2" "$url"; start_server "$p3" "$url"
run "3 servers, broker, 3x1000 subs" --port "$p1" --sub-ports "$p1,$p2,$p3" --subs 3000 --phase 64:20
run "3 servers, broker, 1 remote sub, W=1" --port "$p1" --sub-ports "$p2" --subs 1 --phase 64:1
stop_servers
echo "results: $work/results.jsonl (removed at exit; copy what you keep)" >&2
cat "$work/results.jsonl" >"${WSN_BENCH_OUT:-/dev/null}"
