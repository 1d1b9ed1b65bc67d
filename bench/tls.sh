#!/usr/bin/env bash
# wss:// against ws:// fan-out in the same sitting (docs/benchmarks.md,
# "TLS"): wsn-chat-bench pinned to core 0, wsn-loadgen to core 1, 1,000
# subscribers and one publisher keeping a window of broadcasts in flight;
# the two kinds of run alternate (ws, wss, ws, wss, ...) so that a change
# in the machine's load touches both. Certificates: tests/tls/make_certs.sh
# (EC P-256). Prints each run's JSON line, then the medians and the ratio.
#   bash bench/tls.sh [BUILD_DIR]        (default build-bench; built here)
#   WSN_BENCH_RUNS=5 WSN_BENCH_DURATION=5 WSN_BENCH_SUBS=1000
#   WSN_BENCH_PHASES="64:20 1024:20"
# Not run by CI; every process it starts is ended by PID.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(realpath -m "${1:-$root/build-bench}")"
runs="${WSN_BENCH_RUNS:-5}"
dur="${WSN_BENCH_DURATION:-5}"
subs="${WSN_BENCH_SUBS:-1000}"
phases="${WSN_BENCH_PHASES:-64:20 1024:20}"
lg="$build/bench/wsn-loadgen"
srv="$build/bench/wsn-chat-bench"

cmake -S "$root" -B "$build" -DWSN_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j2 --target wsn-loadgen wsn-chat-bench >/dev/null

work="$(mktemp -d /tmp/wsn-tls-bench.XXXXXX)"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
bash "$root/tests/tls/make_certs.sh" "$work/certs"
ulimit -n "$((subs + 512))"

. "$root/bench/lib.sh"

phase_args=()
for p in $phases; do phase_args+=(--phase "$p"); done

for i in $(seq 1 "$runs"); do
    for kind in ws wss; do
        port=$(free_port)
        tls_srv=()
        tls_lg=()
        if [ "$kind" = wss ]; then
            tls_srv=(--tls-cert "$work/certs/server.pem" --tls-key "$work/certs/server.key")
            tls_lg=(--tls)
        fi
        taskset -c 0 "$srv" --port "$port" "${tls_srv[@]}" 2>>"$work/server.log" &
        pid=$!
        wait_port "$port"
        echo "== run $i $kind: taskset -c 1 wsn-loadgen --mode fanout --subs $subs ${phase_args[*]} --duration $dur ${tls_lg[*]}" >&2
        taskset -c 1 "$lg" --mode fanout --port "$port" --subs "$subs" "${phase_args[@]}" \
            --duration "$dur" --server-pid "$pid" --label "$kind" "${tls_lg[@]}" 2>/dev/null |
            tee -a "$work/results.jsonl"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        pid=""
    done
done

python3 - "$work/results.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("\nsize  kind  deliveries/s (median of runs)  server CPU %  loadgen CPU %  p50 ms  lost")
med = {}
for size in sorted({r["size"] for r in rows}):
    for kind in ("ws", "wss"):
        sel = [r for r in rows if r["size"] == size and r["label"] == kind]
        d = statistics.median(r["deliveries_per_s"] for r in sel)
        med[size, kind] = d
        each = ", ".join("%.0f" % r["deliveries_per_s"] for r in sel)
        print(f"{size:>5} {kind:>4}  {d:>12,.0f}  ({each})"
              f"  {statistics.median(r['server_cpu_pct'] for r in sel):.0f}"
              f"  {statistics.median(r['loadgen_cpu_pct'] for r in sel):.0f}"
              f"  {statistics.median(r['latency']['p50_ms'] for r in sel):.2f}"
              f"  {sum(r['lost'] for r in sel)}")
    print(f"{size:>5} wss/ws = {med[size, 'wss'] / med[size, 'ws']:.2f}")
EOF
