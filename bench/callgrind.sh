#!/usr/bin/env bash
# Instructions per delivery (docs/benchmarks.md): wsn-chat-bench under
# callgrind, a 1,000-subscriber fan-out of 64-byte broadcasts at window 1,
# once with N1 and once with N2 broadcasts; the difference of the two
# totals (all threads) over the extra deliveries is what one delivery
# costs, with connection setup and shutdown cancelled out.
#
#   bench/callgrind.sh BUILD_DIR [ROUNDS]     # prints one line per round
#
# BUILD_DIR holds bench/wsn-chat-bench and bench/wsn-loadgen (a
# -DWSN_BUILD_BENCH=ON build, RelWithDebInfo as bench/run.sh makes it).
# Several builds compare best interleaved: for r in 1 2 3; do for b in
# before after; do bench/callgrind.sh $b 1; done; done.
set -euo pipefail

build="$(realpath "${1:?usage: $0 BUILD_DIR [ROUNDS]}")"
rounds="${2:-1}"
subs=1000
n1=20
n2=120
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# total_ir N: runs the server under callgrind for N broadcasts, prints Ir.
total_ir() {
    local n="$1" port pid
    port="$(free_port)"
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.$n" \
        "$build/bench/wsn-chat-bench" --port "$port" 2>"$work/server.$n" &
    pid=$!
    for _ in $(seq 1 600); do
        grep -q "listening on" "$work/server.$n" 2>/dev/null && break
        sleep 0.1
    done
    "$build/bench/wsn-loadgen" --mode fanout --port "$port" --subs "$subs" --phase 64:1 \
        --warmup 0 --duration 600 --max-broadcasts "$n" --drain 5 >"$work/loadgen.$n" 2>&1
    kill -INT "$pid"
    wait "$pid" || true
    grep -Eo 'Collected : [0-9]+' "$work/server.$n" | awk '{ s += $3 } END { print s }'
}

for _ in $(seq 1 "$rounds"); do
    a="$(total_ir "$n1")"
    b="$(total_ir "$n2")"
    awk -v a="$a" -v b="$b" -v d="$(((n2 - n1) * subs))" -v build="$build" \
        'BEGIN { printf "%s: %.1f Ir per delivery (%d - %d over %d deliveries)\n", build, (b - a) / d, b, a, d }'
done
