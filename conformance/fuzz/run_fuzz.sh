#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time on a copy of its committed
# seed corpus (the corpus in the repository is never modified).
#
#   conformance/fuzz/run_fuzz.sh BIN SECONDS [WORKDIR]
#
# BIN is OUTDIR/fuzz_<target> from build.sh; seeds come from
# conformance/fuzz/corpus/fuzz_<target>/. New inputs and any crash
# artifact go to WORKDIR (default: a temporary folder, kept on failure).
# Exit status: libFuzzer's (0 = no crash, leak, timeout or sanitizer
# report within the time). The last line is "fuzz: 1 passed, 0 failed" or
# "fuzz: 0 passed, 1 failed".
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${1:?usage: run_fuzz.sh BIN SECONDS [WORKDIR]}"
secs="${2:?usage: run_fuzz.sh BIN SECONDS [WORKDIR]}"
name="$(basename "$bin")"
made_work=0
if [ -n "${3:-}" ]; then
    work="$3"
else
    work="$(mktemp -d "${TMPDIR:-/tmp}/wsn-$name-XXXXXX")"
    made_work=1
fi
seeds="$here/corpus/$name"
mkdir -p "$work/corpus" "$work/artifacts"
[ -d "$seeds" ] && cp -n "$seeds"/* "$work/corpus/" 2>/dev/null
echo "fuzz: $name for ${secs}s, corpus $work/corpus (seeds: $seeds)"
# -timeout: one input may not take more than 10 s; -rss_limit_mb bounds
# memory; leaks are reported (ASan's LeakSanitizer) at the end of a run.
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" 2>&1 | tee "$work/fuzz.log" |
    grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse)' 
rc=${PIPESTATUS[0]}
grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/fuzz.log" | tr '\n' ' '
echo
if [ "$rc" -eq 0 ]; then
    [ "$made_work" -eq 1 ] && rm -rf "$work"
    echo "fuzz: 1 passed, 0 failed"
else
    echo "artifacts and log: $work"
    echo "fuzz: 0 passed, 1 failed"
fi
exit "$rc"
